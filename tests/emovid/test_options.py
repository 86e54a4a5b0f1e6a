"""AnalysisOptions and OutputOptions: ranges checked in one place, and what is recorded with the outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from emovid.options import AnalysisOptions, OutputOptions


def test_options_are_validated():
    with pytest.raises(ValueError, match="every"):
        AnalysisOptions(every=0)
    with pytest.raises(ValueError, match="classify_every"):
        AnalysisOptions(classify_every=0)
    with pytest.raises(ValueError, match="full_scan_every_s"):
        AnalysisOptions(full_scan_every_s=-1)
    assert (AnalysisOptions().coarse_side_px, AnalysisOptions(detect_size_px=64).coarse_side_px) == (320, 32)
    assert AnalysisOptions(detect_size_px=63).coarse_side_px is None  # half would be under 32 px: every scan full
    with pytest.raises(ValueError, match="sample_fps"):
        AnalysisOptions(sample_fps=0)
    with pytest.raises(ValueError, match="inference_threads"):
        AnalysisOptions(inference_threads=-1)



def test_the_recorded_options_change_with_a_model_file_retrained_in_place_not_with_speed_options(tmp_path):
    model = tmp_path / "mine.onnx"
    model.write_bytes(b"weights")
    before = AnalysisOptions(model=str(model)).shaping()
    assert AnalysisOptions(model=str(model), threaded=False, inference_threads=1).shaping() == before
    assert AnalysisOptions(model=str(model), every=1).shaping() != before
    model.write_bytes(b"retrained weights")
    assert AnalysisOptions(model=str(model)).shaping() != before


def test_output_options_take_only_known_table_formats():
    assert OutputOptions(table_format="parquet").paths_for(Path("v.mp4")).csv == Path("v.timeline.parquet")
    with pytest.raises(ValueError, match="table_format"):
        OutputOptions(table_format="xlsx")
