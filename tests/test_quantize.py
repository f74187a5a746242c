"""Reduced precision for musicnn: the bfloat16/int8 decision on simulated CPUs, its cache, and int8's error.

The decision (:func:`genrify.models.quantize.decide`) takes the CPU's flags and
measured times as arguments, so both kinds of CPU the issue names are played
here: an Intel Xeon with AVX-512 and VNNI but only *emulated* bfloat16 (oneDNN
says "supported", the product is 4× slower), and one with native bfloat16.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genrify.models.musicnn import load_musicnn
from genrify.models.quantize import (
    CACHE_NAME,
    MatmulTimings,
    PrecisionDecision,
    decide,
    int8_matmul,
    machine_key,
    machine_precision,
    measure_matmuls,
    pack_int8,
    parse_cpuinfo,
    resolve_precision,
)

ICE_LAKE = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n"
            "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni\n\n"
            "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
SAPPHIRE_RAPIDS_FLAGS = frozenset("avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile".split())
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd40\n"


def test_cpuinfo_parsing_reads_the_first_processor_on_x86_and_arm():
    model, flags = parse_cpuinfo(ICE_LAKE)
    assert model.startswith("Intel(R) Xeon(R) Platinum 8375C")
    assert "avx512_vnni" in flags and "avx512_bf16" not in flags and "fpu" in flags
    assert "bf16" in parse_cpuinfo(GRAVITON3)[1]
    assert parse_cpuinfo("") == ("", frozenset())


def test_emulated_bfloat16_is_refused_even_when_it_measures_fast():
    """The Ice Lake case: no avx512_bf16 flag; int8 (VNNI) is the speed-up that works there."""
    _, flags = parse_cpuinfo(ICE_LAKE)
    slow = decide(flags=flags, timings=MatmulTimings(float32=1.0, bfloat16=3.7, int8=0.35))
    assert not slow.bfloat16 and slow.int8
    assert "not native" in slow.reason and "int8" in slow.reason
    # Even a (noisy) fast bfloat16 time does not override a flag set that names no native bfloat16.
    assert not decide(flags=flags, timings=MatmulTimings(float32=1.0, bfloat16=0.5, int8=None)).bfloat16


def test_native_bfloat16_is_used_only_when_measured_faster():
    fast = decide(flags=SAPPHIRE_RAPIDS_FLAGS, timings=MatmulTimings(float32=1.0, bfloat16=0.3, int8=0.4))
    assert fast.bfloat16 and fast.int8
    # The flag alone is not enough: a native-bf16 CPU where the product is not faster keeps float32.
    flat = decide(flags=SAPPHIRE_RAPIDS_FLAGS, timings=MatmulTimings(float32=1.0, bfloat16=0.95, int8=1.1))
    assert not flat.bfloat16 and not flat.int8 and "float32 only" in flat.reason
    # Unknown flags (no /proc/cpuinfo): the measurement decides.
    assert decide(flags=frozenset(), timings=MatmulTimings(float32=1.0, bfloat16=0.4)).bfloat16
    assert not decide(flags=frozenset(), timings=MatmulTimings(float32=1.0, bfloat16=None, int8=None)).int8


def test_resolve_precision_falls_back_to_float32():
    neither = PrecisionDecision(bfloat16=False, int8=False, reason="")
    both = PrecisionDecision(bfloat16=True, int8=True, reason="")
    only_int8 = PrecisionDecision(bfloat16=False, int8=True, reason="")
    assert [resolve_precision(p, neither) for p in ("float32", "bfloat16", "int8", "fastest")] == ["float32"] * 4
    assert [resolve_precision(p, both) for p in ("float32", "bfloat16", "int8", "fastest")] == [
        "float32", "bfloat16", "int8", "bfloat16"]
    assert resolve_precision("fastest", only_int8) == "int8"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", both)


def test_measurement_on_this_machine_gives_positive_times():
    t = measure_matmuls(bfloat16=False)
    assert t.float32 > 0 and t.bfloat16 is None
    assert t.int8 is None or t.int8 > 0


def test_decision_is_cached_per_machine_and_remeasured_when_damaged(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ICE_LAKE)
    cache_dir = tmp_path / "cache"
    first = machine_precision(cache_dir=cache_dir, cpuinfo=cpuinfo)
    assert not first.bfloat16  # no native bfloat16 flag: never chosen, not even timed
    assert first.timings is not None and first.timings.bfloat16 is None
    stored = json.loads((cache_dir / CACHE_NAME).read_text())
    model, flags = parse_cpuinfo(ICE_LAKE)
    key = machine_key(cpu=model, flags=flags)
    assert stored[key]["cpu"] == model

    # A second process reads the file: plant recognisable figures under this machine's key. The choice
    # and the reason are derived from them again, never taken from the file.
    planted = tmp_path / "planted"
    planted.mkdir()
    entry = dict(stored[key], timings={"float32": 0.00123, "bfloat16": None, "int8": None}, reason="planted")
    (planted / CACHE_NAME).write_text(json.dumps({key: entry}))
    again = machine_precision(cache_dir=planted, cpuinfo=cpuinfo)
    assert again.timings == MatmulTimings(float32=0.00123) and "float32 1.23 ms" in again.reason
    assert "planted" not in again.reason and not again.int8

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / CACHE_NAME).write_text("{not json")
    remeasured = machine_precision(cache_dir=damaged, cpuinfo=cpuinfo)
    assert remeasured.timings != MatmulTimings(float32=0.00123)
    assert key in json.loads((damaged / CACHE_NAME).read_text())


def _plant(tmp_path, cpuinfo_text: str, entry: dict, *, name: str = "forged"):
    """A cache folder ``name`` holding ``entry`` under the key of the machine ``cpuinfo_text`` describes
    (a folder of its own: a process reads each cache file once)."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(cpuinfo_text)
    cache_dir = tmp_path / name
    cache_dir.mkdir()
    model, flags = parse_cpuinfo(cpuinfo_text)
    (cache_dir / CACHE_NAME).write_text(json.dumps({machine_key(cpu=model, flags=flags): entry}))
    return cache_dir, cpuinfo


def test_a_forged_cache_cannot_choose_bfloat16_or_reach_the_terminal(tmp_path):
    """A cache saying ``"bfloat16": true`` once made --fast 3.5x slower, and -v printed its reason raw."""
    escape = "\x1b]0;owned\x07bfloat16 is faster\n"
    for i, timings in enumerate(({"float32": 0.002, "bfloat16": 0.007, "int8": None},   # its figures say slower
                                 {"float32": 0.002, "bfloat16": 0.0002, "int8": None})):  # no native bfloat16
        cache_dir, cpuinfo = _plant(tmp_path, ICE_LAKE, {"bfloat16": True, "int8": False, "reason": escape,
                                                         "cpu": escape, "timings": timings}, name=f"forged{i}")
        decision = machine_precision(cache_dir=cache_dir, cpuinfo=cpuinfo)
        assert not decision.bfloat16 and resolve_precision("bfloat16", decision) == "float32"
        assert "\x1b" not in decision.describe() and "\n" not in decision.describe()
        assert decision.cpu.startswith("Intel(R) Xeon(R) Platinum 8375C")  # this machine's, not the file's


@pytest.mark.parametrize("timings", [{"float32": -1.0}, {"float32": 0.0}, {"float32": float("nan")},
                                     {"float32": "fast"}, {"float32": True}, {"float32": 1e9},
                                     {"float32": 0.002, "int8": -5.0}, {}, "x"])
def test_cached_figures_that_cannot_be_measurements_are_measured_again(tmp_path, timings):
    cache_dir, cpuinfo = _plant(tmp_path, ICE_LAKE, {"bfloat16": False, "int8": True, "reason": "", "cpu": "",
                                                     "timings": timings})
    decision = machine_precision(cache_dir=cache_dir, cpuinfo=cpuinfo)
    assert decision.timings is not None and 1e-6 < decision.timings.float32 < 10
    measured = decision.timings
    assert decision.int8 == (measured.int8 is not None and measured.int8 <= 0.8 * measured.float32)


def test_forged_figures_on_a_bfloat16_machine_are_checked_by_measuring(tmp_path):
    """Where the flags name native bfloat16, figures claiming it 10x faster are checked by one quick
    measurement before they are believed; on a CPU that emulates it, they are measured again."""
    from genrify.models.quantize import bfloat16_may_be_native, read_cpuinfo

    if bfloat16_may_be_native(read_cpuinfo()[1]):
        pytest.skip("this CPU has native bfloat16: the forged figures may well be right here")
    native = ICE_LAKE.replace("avx512_vnni", "avx512_vnni avx512_bf16")
    cache_dir, cpuinfo = _plant(tmp_path, native, {"bfloat16": True, "int8": False, "reason": "", "cpu": "",
                                                   "timings": {"float32": 0.002, "bfloat16": 0.0002, "int8": None}})
    decision = machine_precision(cache_dir=cache_dir, cpuinfo=cpuinfo)
    assert not decision.bfloat16 and decision.timings.bfloat16 != 0.0002


@pytest.mark.parametrize("kind", ["fifo", "zero", "deep"])
def test_a_cache_that_is_a_fifo_a_device_or_deeply_nested_is_measured_again(tmp_path, kind):
    """A FIFO once hung the process, a link to /dev/zero grew without bound, deep JSON raised RecursionError."""
    import os
    import threading

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ICE_LAKE)
    cache = tmp_path / "cache" / CACHE_NAME
    cache.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(cache)
    elif kind == "zero":
        cache.symlink_to("/dev/zero")
    else:
        cache.write_text("[" * 200_000 + "]" * 200_000)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("d", machine_precision(cache_dir=cache.parent,
                                                                               cpuinfo=cpuinfo)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "machine_precision blocked on its cache file"
    assert out["d"].timings.float32 > 0
    assert cache.is_file() and not cache.is_symlink()  # replaced by a good cache


def test_int8_product_is_close_to_float32():
    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(944, 266, generator=gen), torch.randn(266, 204, generator=gen)
    ref = x @ w
    err = (int8_matmul(x, pack_int8(w)) - ref).abs().max() / ref.abs().max()
    assert err < 0.04  # 7-bit activations, 8-bit weights per channel


@pytest.fixture(scope="module")
def musicnn():
    # One thread: on a loaded 2-core machine OpenMP threads waiting for each other cost far more than they give.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_musicnn()
    torch.set_num_threads(threads)


def test_int8_repacks_when_the_weights_change(musicnn):
    import copy

    net = copy.deepcopy(musicnn).set_precision("int8")
    x = torch.randn(1, 40, 96, generator=torch.Generator().manual_seed(2))  # the network pools over any length
    with torch.no_grad():
        before = net(x)
        net.timbral[0].conv.weight.mul_(0.5)
        after = net(x)
        assert not torch.allclose(before, after)
        net.set_precision("float32")
        exact = net(x)
    assert (after - exact).abs().max() < 0.5  # logits: int8 of the new weights, not the old packing


def test_use_precision_follows_the_measured_decision(musicnn):
    import copy

    decision = machine_precision()
    net = copy.deepcopy(musicnn)
    assert net.use_precision("int8").precision == ("int8" if decision.int8 else "float32")
    assert net.use_precision("bfloat16").precision == ("bfloat16" if decision.bfloat16 else "float32")
    assert net.use_precision("float32").precision == "float32"
    with pytest.raises(ValueError):
        net.set_precision("int4")


# Song-level tolerance on real clips. Measured over every clip of gtzan-mini,
# gtzan-excerpts and cc-audio with benchmarks/bench_int8.py (docs/performance.md).
TAG_TOLERANCE = 0.01


@pytest.mark.slow
def test_int8_song_tags_within_tolerance_on_real_clips(musicnn, shared_data):
    """musicnn's song-level tag probabilities (mean over all patches) in int8 vs float32."""
    import copy

    from genrify.audio import load_audio
    from genrify.features.musicnn import SR, musicnn_logmel, musicnn_patches

    clips = sorted(shared_data.glob("gtzan-mini/*/*.00000.wav"))[::2] + sorted(shared_data.glob("cc-audio/*.ogg"))[:2]
    assert len(clips) >= 6
    int8 = copy.deepcopy(musicnn).set_precision("int8")
    worst = 0.0
    with torch.inference_mode():
        for path in clips:
            x = torch.from_numpy(musicnn_patches(musicnn_logmel(y=load_audio(path, sr=SR)[0])))
            a, b = torch.sigmoid(musicnn(x)).mean(0), torch.sigmoid(int8(x)).mean(0)
            worst = max(worst, float((a - b).abs().max()))
    assert np.isfinite(worst) and worst <= TAG_TOLERANCE, worst
