"""Loading the models: thread counts and extra session settings reach both ONNX Runtime sessions."""

from __future__ import annotations

import pytest

from emovid.loading import load_models
from emovid.options import AnalysisOptions


@pytest.mark.parametrize("threads", [1, 0])
def test_load_models_gives_both_sessions_the_thread_count(threads):
    models = load_models(AnalysisOptions(device="cpu", inference_threads=threads))
    sessions = [models.detector.session] + [session for _, session, _ in models.classifier._members]
    assert [s.get_session_options().intra_op_num_threads for s in sessions] == [threads] * len(sessions)


def test_load_models_applies_the_session_config_to_both_sessions():
    import onnxruntime as ort

    def spin_unoptimised(options):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")  # overrides emovid's "0"

    models = load_models(AnalysisOptions(device="cpu"), session_config=spin_unoptimised)
    sessions = [models.detector.session] + [session for _, session, _ in models.classifier._members]
    for session in sessions:
        options = session.get_session_options()
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
