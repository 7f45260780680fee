#!/usr/bin/env python3
# Cross-checks Spider's GGUF I/O against gguf-py, the Python GGUF library maintained with llama.cpp.
#
# Pins: gguf==0.19.0, safetensors==0.8.0, sentencepiece==0.2.3, torch==2.15.0 (only for bfloat16), numpy
#
# 1. Writes tests/data/gguf/gguf_py_all_types.gguf with gguf-py: every metadata type and f32/f16/q8_0 tensors.
#    tests/test_gguf.cpp (gguf.reads_file_written_by_gguf_py) reads it with our reader and checks every value.
# 2. Reads tests/data/gguf/spider_written.gguf (written by our gguf_writer: run
#    `SPIDER_WRITE_GOLDENS=1 test_gguf --gtest_filter=*golden*` first) with gguf-py's GGUFReader and checks that
#    every key, type and tensor is what our writer meant to write.
# 3. Writes safetensors goldens with the reference safetensors library: tests/data/safetensors/single.safetensors
#    (F32/F16/BF16/I64/U8 + __metadata__) and a two-shard checkpoint sharded/ with model.safetensors.index.json,
#    read by tests/test_safetensors.cpp.
#
# 4. Dumps the SentencePiece pieces of tests/data/llm/tiny_*_hf/tokenizer.model with the reference sentencepiece
#    library (sentencepiece==0.2.3) to tests/data/gguf/<name>_sp_pieces.json: our protobuf reader and `spider
#    convert` must produce the same pieces, scores and types.
#
# Usage: python3 tests/reference/make_gguf_goldens.py   (from the repository root)
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGUFWriter, GGMLQuantizationType

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "data", "gguf")


def write_py_golden(path):
    w = GGUFWriter(path, "llama")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float32("test.f32", 0.25)
    w.add_float64("test.f64", -1.0e100)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "h\u00e9llo, world")
    w.add_array("test.arr_str", ["a", "bb", ""])
    w.add_key_value("test.arr_i32", [1, -2, 3], GGUFValueType.ARRAY, sub_type=GGUFValueType.INT32)
    w.add_key_value("test.arr_f32", [0.5, -1.5], GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT32)
    w.add_key_value("test.arr_u8", [1, 2, 255], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT8)
    w.add_key_value("test.arr_bool", [True, False], GGUFValueType.ARRAY, sub_type=GGUFValueType.BOOL)
    w.add_tensor("t.f32", np.arange(12, dtype=np.float32).reshape(3, 4))
    w.add_tensor("t.f16", (np.arange(8, dtype=np.float32) / 2).astype(np.float16))
    x = np.sin(0.1 * np.arange(128, dtype=np.float32)).reshape(2, 64)
    q = gguf.quants.quantize(x, GGMLQuantizationType.Q8_0)
    w.add_tensor("t.q8_0", q, raw_dtype=GGMLQuantizationType.Q8_0)  # q has the byte shape (2, 68)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def field_value(f):
    t = f.types[0]
    if t == GGUFValueType.ARRAY:
        return f.types[1], f.contents()
    return t, f.contents()


def check_spider_golden(path):
    r = GGUFReader(path)
    want = {
        "general.architecture": (GGUFValueType.STRING, "llama"),
        "general.name": (GGUFValueType.STRING, "spider golden"),
        "test.u32": (GGUFValueType.UINT32, 7),
        "test.i64": (GGUFValueType.INT64, -5),
        "test.f64": (GGUFValueType.FLOAT64, 2.5),
        "test.bool": (GGUFValueType.BOOL, False),
        "test.arr_str": (GGUFValueType.STRING, ["x", "yz"]),
        "test.arr_f32": (GGUFValueType.FLOAT32, [1.0, 2.0, 3.0]),
    }
    got = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue  # reader's pseudo-fields for the header
        got[name] = field_value(f)
    assert got == want, f"metadata mismatch:\n got  {got}\n want {want}"
    assert len(r.tensors) == 1, r.tensors
    t = r.tensors[0]
    assert t.name == "t.a" and t.tensor_type == GGMLQuantizationType.F32, (t.name, t.tensor_type)
    assert list(t.shape) == [3, 2], t.shape  # GGUF order: ne[0] first
    np.testing.assert_array_equal(np.asarray(t.data).reshape(-1), np.arange(6, dtype=np.float32) * 1.5)
    print(f"gguf-py read {path}: {len(want)} keys and 1 tensor as intended")


def write_safetensors_goldens():
    # torch for bfloat16 (numpy has none); safetensors.torch writes the same format transformers does.
    import json
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_file_torch
    d = os.path.join(ROOT, "tests", "data", "safetensors")
    os.makedirs(os.path.join(d, "sharded"), exist_ok=True)
    tensors = {
        "a.f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5,
        "b.f16": (torch.arange(4, dtype=torch.float32) - 1.5).to(torch.float16),
        "c.bf16": torch.tensor([1.0, -2.5, 3.140625, 0.0]).to(torch.bfloat16),  # exactly representable
        "d.i64": torch.tensor([[-3, 4]], dtype=torch.int64),
        "e.u8": torch.tensor([0, 7, 255], dtype=torch.uint8),
    }
    path = os.path.join(d, "single.safetensors")
    save_file_torch(tensors, path, metadata={"format": "pt", "note": "spider golden"})
    # Sharded: two files and the index, as transformers' save_pretrained writes them.
    s1 = {"model.layers.0.w": np.full((2, 2), 1.0, dtype=np.float32)}
    s2 = {"model.layers.1.w": np.full((2, 2), 2.0, dtype=np.float32), "lm_head.weight": np.eye(2, dtype=np.float32)}
    save_file(s1, os.path.join(d, "sharded", "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file(s2, os.path.join(d, "sharded", "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    wm = {k: "model-00001-of-00002.safetensors" for k in s1}
    wm.update({k: "model-00002-of-00002.safetensors" for k in s2})
    with open(os.path.join(d, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 48}, "weight_map": wm}, f, indent=2)
    print(f"wrote safetensors goldens in {d}")


def write_sentencepiece_goldens():
    import json
    import sentencepiece as spm
    for name in ("tiny_llama", "tiny_gemma3"):
        path = os.path.join(ROOT, "tests", "data", "llm", name + "_hf", "tokenizer.model")
        if not os.path.exists(path):
            print(f"{path} missing, skipped", file=sys.stderr)
            continue
        sp = spm.SentencePieceProcessor(model_file=path)
        pieces = []
        for i in range(sp.vocab_size()):
            t = 1  # NORMAL
            if sp.is_unknown(i):
                t = 2
            elif sp.is_control(i):
                t = 3
            elif sp.is_unused(i):
                t = 5
            elif sp.is_byte(i):
                t = 6
            pieces.append([sp.id_to_piece(i), sp.get_score(i), t])
        out = {"source": os.path.relpath(path, ROOT), "unk_id": sp.unk_id(), "bos_id": sp.bos_id(),
               "eos_id": sp.eos_id(), "pad_id": sp.pad_id(), "pieces": pieces}
        dst = os.path.join(OUT_DIR, name + "_sp_pieces.json")
        with open(dst, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=0)
        print(f"wrote {dst} ({len(pieces)} pieces)")


def main():
    write_safetensors_goldens()
    os.makedirs(OUT_DIR, exist_ok=True)
    write_sentencepiece_goldens()
    os.makedirs(OUT_DIR, exist_ok=True)
    assert gguf.__version__ if hasattr(gguf, "__version__") else True
    py_path = os.path.join(OUT_DIR, "gguf_py_all_types.gguf")
    write_py_golden(py_path)
    print(f"wrote {py_path} ({os.path.getsize(py_path)} bytes)")
    sp_path = os.path.join(OUT_DIR, "spider_written.gguf")
    if not os.path.exists(sp_path):
        print(f"{sp_path} missing: run SPIDER_WRITE_GOLDENS=1 test_gguf --gtest_filter=*golden* first", file=sys.stderr)
        return 1
    check_spider_golden(sp_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
