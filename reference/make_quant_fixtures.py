#!/usr/bin/env python3
"""Regenerate the bitsandbytes bit-compatibility fixtures in testdata/quant/.

    reference/setup.sh && reference/.venv/bin/python reference/make_quant_fixtures.py

Everything is computed by bitsandbytes 0.50.2 itself on the CPU (its CPU backend:
quantize_4bit is the PyTorch "default" kernel, the 8-bit blockwise quantizer of the
double quantization and dequantize_4bit are the native libbitsandbytes_cpu kernels),
so the Go tests in quant/ compare shoggo against the real library, not a re-implementation.
The machine's torch must be single-threaded-equivalent for the absmax mean (vectors here
are far below torch's 32768-element parallel grain, so it is).

Files (all small; total < 500 KB):

bnb4bit.safetensors
    For each case <c> (metadata "cases": JSON list of {name, shape, blocksize}):
      <c>.input                    F32  the input, shape as listed
    and for each variant <v> = <qt> or <qt>_dq  (qt nf4|fp4, _dq = compress_statistics=True):
      <c>.<v>.packed               U8   quantize_4bit's packed codes, flattened ((numel+1)/2)
      <c>.<v>.absmax               F32  per-block absmax (plain variants)
      <c>.<v>.qabsmax              U8   8-bit codes of absmax - offset (double-quant variants)
      <c>.<v>.absmax2              F32  absmax of each 256-block of (absmax - offset)
      <c>.<v>.offset               F32  [1] the mean of the absmax vector
      <c>.<v>.dequant              F32  dequantize_4bit(packed, state), shape as the input
                                        (left out where metadata "no_dequant" lists <c>.<v>)
    dynamic_map                    F32  [256] create_dynamic_map(signed=True)
    fp4_code, nf4_code             F32  [16] get_4bit_type(...)
    q8.input / q8.q / q8.absmax / q8.dequant
                                   quantize_blockwise(input, blocksize=256) and its dequantization
                                   (the kernel double quantization uses), on random data and on
                                   values at the edges of its 65536-bin lookup table

int8.safetensors
    w F32 (rows, cols); cb I8, scb F32 = int8_vectorwise_quant(w); dequant F32 =
    int8_vectorwise_dequant(cb, scb)

bnb_modules.safetensors
    state dicts of bitsandbytes modules, saved exactly as bnb/transformers save them, under the
    prefixes nf4dq. (Linear4bit nf4, double quant, 24x70 + bias), fp4. (Linear4bit fp4, 24x64,
    no bias) and int8. (Linear8bitLt, 24x70 + bias); plus x (3, 70) / x64 (3, 64) inputs and the
    modules' forward outputs y_nf4dq, y_fp4, and dq_int8 (int8_vectorwise_dequant of the saved
    weight).

Output is deterministic for fixed versions.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata" / "quant"
SEED = 20250107
f32 = np.float32


_ST_DTYPE = {torch.float32: "F32", torch.uint8: "U8", torch.int8: "I8"}


def save_file(tensors, path, metadata):
    """safetensors.torch.save_file with a byte-stable header (tensors and keys in sorted order)."""
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def sorted_code(qt):
    return np.sort(F.get_4bit_type(qt, device="cpu").numpy())


def edge_input(qt):
    """(9, 64): one block per row of hand-made edge values, plus ties in every block."""
    rng = np.random.default_rng(SEED + 1)
    s = sorted_code(qt)
    mids = ((s[:-1] + s[1:]) / f32(2)).astype(f32)
    rows = []
    rows.append(np.zeros(64, f32))  # all-zero block
    rows.append(np.resize(s, 64).astype(f32))  # exact table values, absmax 1
    r = np.resize(mids, 64).astype(f32)
    r[0] = 1.0
    rows.append(r)  # exact ties with absmax 1 (reciprocal exact)
    r = (np.resize(mids, 64) * f32(2)).astype(f32)
    r[5] = -2.0
    rows.append(r)  # ties with absmax 2, the max negative
    r = (np.resize(s, 64) * f32(3)).astype(f32)
    rows.append(r)  # table values times 3: inexact reciprocal
    r = (np.resize(mids, 64) * f32(3)).astype(f32)
    r[7] = 3.0
    rows.append(r)  # ties times 3
    rows.append((rng.standard_normal(64) * 1e-30).astype(f32))  # tiny values
    r = np.nextafter(np.resize(mids, 64), np.where(np.arange(64) % 2 == 0, 1.0, -1.0).astype(f32)).astype(f32)
    r[1] = -1.0
    rows.append(r)  # one ulp on either side of the ties
    r = (rng.standard_normal(64)).astype(f32)
    r[::5] = 0.0
    r[1::7] = -0.0
    rows.append(r)  # signed zeros among random values
    return np.stack(rows)


def lut_stress():
    """Values at the edges of the native 8-bit quantizer's 65536-bin lookup table."""
    code = F.create_dynamic_map().numpy()
    mids = (f32(0.5) * (code[:-1] + code[1:])).astype(f32)
    i = np.arange(65536)
    grid = (f32(-1.0) + ((f32(2.0) * i.astype(f32)) / f32(65535)).astype(f32)).astype(f32)
    rng = np.random.default_rng(SEED + 2)
    pick = np.concatenate([mids, grid[rng.integers(0, 65536, 500)]])
    vals = np.concatenate([pick, np.nextafter(pick, f32(2)), np.nextafter(pick, f32(-2))]).astype(f32)
    # the bin boundaries of the index computation: (v+1)*0.5*65535+0.5 crossing an integer
    k = rng.integers(0, 65535, 400)
    b = ((k.astype(np.float64) + 0.5) / 65535.0 * 2.0 - 1.0).astype(f32)
    vals = np.concatenate([vals, b, np.nextafter(b, f32(2)), np.nextafter(b, f32(-2))]).astype(f32)
    vals = np.clip(vals, -1, 1)
    n = len(vals)
    blocks = (n + 254) // 255
    out = np.zeros(blocks * 256, f32)
    for j in range(blocks):  # each 256-block: 1.0 first (absmax 1, exact reciprocal), then 255 values
        out[j * 256] = 1.0
        chunk = vals[j * 255 : (j + 1) * 255]
        out[j * 256 + 1 : j * 256 + 1 + len(chunk)] = chunk
    return out


def make_bnb4bit(tensors, meta):
    rng = np.random.default_rng(SEED)
    cases = []

    def add_case(name, x, blocksize, qts=("nf4", "fp4"), no_dequant=()):
        x = np.ascontiguousarray(x, dtype=f32)
        tensors[f"{name}.input"] = torch.from_numpy(x.copy())
        cases.append({"name": name, "shape": list(x.shape), "blocksize": blocksize})
        for qt in qts:
            for dq in (False, True):
                v = f"{name}.{qt}" + ("_dq" if dq else "")
                packed, st = F.quantize_4bit(
                    torch.from_numpy(x.copy()), blocksize=blocksize, compress_statistics=dq, quant_type=qt
                )
                tensors[f"{v}.packed"] = packed.flatten().clone()
                if dq:
                    tensors[f"{v}.qabsmax"] = st.absmax.clone()
                    tensors[f"{v}.absmax2"] = st.state2.absmax.clone()
                    tensors[f"{v}.offset"] = st.offset.reshape(1).clone().float()
                    assert st.state2.blocksize == 256
                else:
                    tensors[f"{v}.absmax"] = st.absmax.clone()
                if v not in no_dequant:
                    tensors[f"{v}.dequant"] = F.dequantize_4bit(packed, st).clone().float()

    add_case("rand_32x64", rng.standard_normal((32, 64)), 64)
    add_case("odd_7x70", rng.standard_normal((7, 70)) * 0.02, 64)  # blocks span rows, remainder 42
    add_case("odd_5x33_bs32", rng.standard_normal((5, 33)), 32)  # odd numel: pad nibble, generic dequant
    add_case("rem_zero_1x70", np.concatenate([rng.standard_normal(64), np.zeros(6)])[None, :], 64)
    add_case("bs128_9x100", rng.standard_normal((9, 100)) * 3, 128)
    add_case("bs256_3x300", rng.standard_normal((3, 300)), 256)
    add_case("vec_1001", rng.standard_normal(1001) * 0.1, 64)  # 1-D
    for qt in ("nf4", "fp4"):
        add_case(f"edge_{qt}", edge_input(qt), 64, qts=(qt,))
    add_case("zeros_2x70", np.zeros((2, 70)), 64)
    add_case("const_4x64", np.ones((4, 64)), 64)  # absmax - offset == 0: absmax2 = 0
    # 270 absmax blocks: the double quantization has a full and a partial 256-block.
    big = rng.standard_normal((48, 360)) * np.exp(rng.standard_normal((48, 1)))
    no_dq = ["big_48x360.fp4", "big_48x360.fp4_dq", "big_48x360.nf4"]
    add_case("big_48x360", big, 64, no_dequant=no_dq)
    meta["cases"] = json.dumps(cases)
    meta["no_dequant"] = json.dumps(no_dq)

    tensors["dynamic_map"] = F.create_dynamic_map().clone()
    tensors["nf4_code"] = F.get_4bit_type("nf4", device="cpu").clone()
    tensors["fp4_code"] = F.get_4bit_type("fp4", device="cpu").clone()

    q8in = np.concatenate([lut_stress(), (rng.standard_normal(1000) * 5).astype(f32)]).astype(f32)
    q8in[-100:-50] = 0.0  # part of a block of zeros
    q8in = np.concatenate([q8in, np.zeros(256, f32), np.full(3, -0.5, f32)])  # an all-zero block, a short one
    q, st = F.quantize_blockwise(torch.from_numpy(q8in.copy()), blocksize=256)
    tensors["q8.input"] = torch.from_numpy(q8in)
    tensors["q8.q"] = q.clone()
    tensors["q8.absmax"] = st.absmax.clone()
    tensors["q8.dequant"] = F.dequantize_blockwise(q, st).clone()


def make_int8():
    rng = np.random.default_rng(SEED + 3)
    w = rng.standard_normal((16, 70)).astype(f32)
    w[3] *= 1e-3
    ties = np.zeros(70, f32)  # absmax 127: scale 1, so .5 values are exact ties (half to even)
    ties[0] = 127.0
    ties[1:40] = (np.arange(39) - 19).astype(f32) + f32(0.5)
    w[5] = ties
    w[6, 10] = 50.0  # an outlier
    cb, scb, _ = F.int8_vectorwise_quant(torch.from_numpy(w.copy()))
    dq = F.int8_vectorwise_dequant(cb, scb)
    save_file(
        {"w": torch.from_numpy(w), "cb": cb.contiguous(), "scb": scb.contiguous(), "dequant": dq.contiguous()},
        str(OUT / "int8.safetensors"),
        metadata={"generator": "reference/make_quant_fixtures.py", "bitsandbytes": bnb.__version__},
    )


def make_modules():
    torch.manual_seed(SEED)
    out = {}
    x = torch.randn(3, 70)
    x64 = torch.randn(3, 64)
    out["x"], out["x64"] = x, x64

    def lin4(inf, outf, bias, qt, dq):
        lin = torch.nn.Linear(inf, outf, bias=bias)
        m = bnb.nn.Linear4bit(inf, outf, bias=bias, compute_dtype=torch.float32, compress_statistics=dq, quant_type=qt)
        m.weight = bnb.nn.Params4bit(lin.weight.data.clone(), requires_grad=False, compress_statistics=dq, quant_type=qt)
        if bias:
            m.bias = torch.nn.Parameter(lin.bias.data.clone(), requires_grad=False)
        return m.to("cpu")

    m = lin4(70, 24, True, "nf4", True)
    for k, v in m.state_dict().items():
        out["nf4dq." + k] = v.detach().clone()
    with torch.no_grad():
        out["y_nf4dq"] = m(x).clone()
    m = lin4(64, 24, False, "fp4", False)
    for k, v in m.state_dict().items():
        out["fp4." + k] = v.detach().clone()
    with torch.no_grad():
        out["y_fp4"] = m(x64).clone()

    lin = torch.nn.Linear(70, 24)
    m8 = bnb.nn.Linear8bitLt(70, 24, bias=True, has_fp16_weights=False, threshold=0.0)
    m8.weight = bnb.nn.Int8Params(lin.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
    m8.bias = torch.nn.Parameter(lin.bias.data.clone(), requires_grad=False)
    m8 = m8.to("cpu")
    sd = m8.state_dict()
    for k, v in sd.items():
        out["int8." + k] = v.detach().clone()
    out["dq_int8"] = F.int8_vectorwise_dequant(sd["weight"], sd["SCB"]).clone()
    save_file(
        out,
        str(OUT / "bnb_modules.safetensors"),
        metadata={"generator": "reference/make_quant_fixtures.py", "bitsandbytes": bnb.__version__},
    )


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, meta = {}, {"generator": "reference/make_quant_fixtures.py", "bitsandbytes": bnb.__version__}
    make_bnb4bit(tensors, meta)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, str(OUT / "bnb4bit.safetensors"), metadata=meta)
    make_int8()
    make_modules()
    total = 0
    for p in sorted(OUT.glob("*.safetensors")):
        total += p.stat().st_size
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")
    print(f"total {total} bytes")
    assert total < 500_000, total


if __name__ == "__main__":
    main()
