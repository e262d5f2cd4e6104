"""Tests of snow_rt_py.protocol.mask: RFC 6455 §5.3 masking, the C accelerator against pure Python."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snow_rt_py.protocol import mask as mask_module
from snow_rt_py.protocol.mask import HAVE_SPEEDUPS, MaskedPayload, apply_mask, apply_mask_inplace, apply_mask_py

ROOT = Path(__file__).resolve().parents[2]

# RFC 6455 §5.7: "A single-frame masked text message": 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58
RFC_KEY = bytes([0x37, 0xFA, 0x21, 0x3D])
RFC_MASKED_HELLO = bytes([0x7F, 0x9F, 0x4D, 0x51, 0x58])

needs_speedups = pytest.mark.skipif(
    not HAVE_SPEEDUPS,
    reason="C accelerator snow_rt_py._speedups not in use (not built by `make build`, "
    "or disabled by SNOW_RT_PY_NO_SPEEDUPS=1)",
)

keys = st.binary(min_size=4, max_size=4)
# Every length up to 300 (the C loop's 8-byte steps and each tail length, on both sides of C_THRESHOLD),
# plus a few larger payloads.
payloads = st.one_of(st.binary(max_size=300), st.binary(min_size=301, max_size=70_000))


def xor_reference(data: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 octet by octet: transformed-octet-i = original-octet-i XOR masking-key-octet-(i % 4)."""
    return bytes(octet ^ key[i % 4] for i, octet in enumerate(data))


def c_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """The C copy function called directly, for any length (apply_mask sends only long payloads to C)."""
    ffi, lib = mask_module._ffi, mask_module._lib
    out = ffi.new("char[]", len(data))
    lib.snow_mask_copy(ffi.from_buffer(data), len(data), key, out)
    return bytes(ffi.buffer(out))


def c_mask_inplace(buf: bytearray | memoryview, key: bytes) -> None:
    """The C in-place function called directly, for any length."""
    ffi, lib = mask_module._ffi, mask_module._lib
    lib.snow_mask_inplace(ffi.from_buffer(buf), len(buf), key)


# --- RFC example --------------------------------------------------------------------------------------------


def test_rfc_6455_example_unmasks_to_hello() -> None:
    assert apply_mask(RFC_MASKED_HELLO, RFC_KEY) == b"Hello"
    assert apply_mask_py(RFC_MASKED_HELLO, RFC_KEY) == b"Hello"


def test_rfc_6455_example_masks_hello() -> None:
    assert apply_mask(b"Hello", RFC_KEY) == RFC_MASKED_HELLO


def test_rfc_6455_example_in_place() -> None:
    buf = bytearray(RFC_MASKED_HELLO)
    apply_mask_inplace(buf, RFC_KEY)
    assert buf == b"Hello"


@needs_speedups
def test_rfc_6455_example_in_c() -> None:
    assert c_mask(RFC_MASKED_HELLO, RFC_KEY) == b"Hello"


def test_rfc_6455_example_repeated_past_the_threshold() -> None:
    # The same key over a payload long enough for the C path (when built): "Hello" is 5 octets, so the copies
    # start at every key phase.
    n = 101
    masked = apply_mask(b"Hello" * n, RFC_KEY)
    assert len(masked) == 5 * n
    assert masked[:5] == RFC_MASKED_HELLO
    assert apply_mask(masked, RFC_KEY) == b"Hello" * n


# --- properties ---------------------------------------------------------------------------------------------


@given(data=payloads, key=keys)
def test_apply_mask_matches_the_rfc_definition(data: bytes, key: bytes) -> None:
    assert apply_mask(data, key) == xor_reference(data, key)


@given(data=st.binary(max_size=300), key=keys)
def test_pure_python_matches_the_rfc_definition(data: bytes, key: bytes) -> None:
    assert apply_mask_py(data, key) == xor_reference(data, key)


@given(data=payloads, key=keys)
def test_masking_is_an_involution(data: bytes, key: bytes) -> None:
    assert apply_mask(apply_mask(data, key), key) == data
    assert apply_mask_py(apply_mask_py(data, key), key) == data


@given(data=payloads, key=keys)
def test_bytearray_and_memoryview_inputs_give_the_same_result(data: bytes, key: bytes) -> None:
    expected = apply_mask_py(data, key)
    assert apply_mask(bytearray(data), key) == expected
    assert apply_mask(memoryview(data), key) == expected
    assert apply_mask(data, bytearray(key)) == expected
    assert apply_mask(data, memoryview(key)) == expected


@given(data=payloads, key=keys, start=st.integers(min_value=0, max_value=7))
def test_memoryview_slice_of_a_larger_buffer(data: bytes, key: bytes, start: int) -> None:
    # A payload inside a receive buffer, at every alignment.
    buffer = bytes(start) + data + b"\xff" * 3
    view = memoryview(buffer)[start : start + len(data)]
    assert apply_mask(view, key) == apply_mask_py(data, key)


@given(data=payloads, key=keys, start=st.integers(min_value=0, max_value=7))
def test_in_place_matches_copy_and_touches_only_the_view(data: bytes, key: bytes, start: int) -> None:
    buf = bytearray(b"\xaa" * start + data + b"\x55" * 3)
    apply_mask_inplace(memoryview(buf)[start : start + len(data)], key)
    assert buf == b"\xaa" * start + apply_mask_py(data, key) + b"\x55" * 3

    whole = bytearray(data)
    apply_mask_inplace(whole, key)
    assert whole == apply_mask_py(data, key)


def test_empty_payload() -> None:
    assert apply_mask(b"", RFC_KEY) == b""
    assert apply_mask_py(b"", RFC_KEY) == b""
    buf = bytearray()
    apply_mask_inplace(buf, RFC_KEY)
    assert buf == b""


@pytest.mark.parametrize("size", [1 << 16, (1 << 20) + 3, (4 << 20) + 1])
def test_large_payloads(size: int) -> None:
    data = os.urandom(size)
    expected = apply_mask_py(data, RFC_KEY)
    assert apply_mask(data, RFC_KEY) == expected
    buf = bytearray(data)
    apply_mask_inplace(buf, RFC_KEY)
    assert buf == expected


def test_growing_and_shrinking_payloads() -> None:
    # apply_mask reuses scratch memory between calls: a long payload after a short one (and back) must not
    # see stale or truncated output.
    for size in [200, 100_000, 200, 70_001, 5, 300_000, 161]:
        data = os.urandom(size)
        assert apply_mask(data, RFC_KEY) == apply_mask_py(data, RFC_KEY), size


def test_concurrent_callers_get_their_own_results() -> None:
    # The C call releases the GIL: threads masking at the same time must not share scratch memory.
    rng = random.Random(6455)
    jobs = [(rng.randbytes(rng.randrange(150, 200_000)), rng.randbytes(4)) for _ in range(64)]
    expected = [apply_mask_py(data, key) for data, key in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            assert list(pool.map(lambda job: apply_mask(*job), jobs)) == expected


# --- C against pure Python ----------------------------------------------------------------------------------


@needs_speedups
@given(data=payloads, key=keys)
def test_c_copy_equals_pure_python(data: bytes, key: bytes) -> None:
    assert c_mask(data, key) == apply_mask_py(data, key)


@needs_speedups
@given(data=payloads, key=keys, start=st.integers(min_value=0, max_value=7))
def test_c_in_place_equals_pure_python_at_every_alignment(data: bytes, key: bytes, start: int) -> None:
    buf = bytearray(b"\xaa" * start + data + b"\x55" * 9)
    c_mask_inplace(memoryview(buf)[start : start + len(data)], key)
    assert buf == b"\xaa" * start + apply_mask_py(data, key) + b"\x55" * 9


@needs_speedups
def test_c_every_length_up_to_300() -> None:
    data = bytes(range(256)) * 2
    key = b"\x01\x80\xfe\x7f"
    for length in range(301):
        assert c_mask(data[:length], key) == xor_reference(data[:length], key), length


@needs_speedups
def test_long_payloads_use_the_accelerator() -> None:
    # The threshold is what routes a payload to C; a payload of that size must come back right.
    data = os.urandom(mask_module.C_THRESHOLD)
    assert apply_mask(data, RFC_KEY) == c_mask(data, RFC_KEY) == apply_mask_py(data, RFC_KEY)


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
@pytest.mark.parametrize("size", [5, 1000])
def test_key_must_be_four_bytes(key: bytes, size: int) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask(bytes(size), key)
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask_py(bytes(size), key)
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask_inplace(bytearray(size), key)


@pytest.mark.parametrize("size", [5, 1000])
def test_in_place_refuses_read_only_buffers(size: int) -> None:
    data = bytes(size)
    with pytest.raises(TypeError, match="writable"):
        apply_mask_inplace(data, RFC_KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="writable"):
        apply_mask_inplace(memoryview(data), RFC_KEY)
    assert data == bytes(size)


# --- SNOW_RT_PY_NO_SPEEDUPS ---------------------------------------------------------------------------------


def test_environment_variable_forces_the_fallback() -> None:
    code = (
        "import os\n"
        "from snow_rt_py.protocol import mask\n"
        "data = os.urandom(5000)\n"
        "key = bytes([0x37, 0xfa, 0x21, 0x3d])\n"
        "assert mask.apply_mask(data, key) == mask.apply_mask_py(data, key)\n"
        "assert mask.apply_mask(b'\\x7f\\x9f\\x4d\\x51\\x58', key) == b'Hello'\n"
        "print(mask.HAVE_SPEEDUPS)\n"
    )
    env = {**os.environ, "SNOW_RT_PY_NO_SPEEDUPS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --- MaskedPayload: a large payload unmasked piece by piece --------------------------------------------------


def chunks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


IMPLEMENTATIONS = pytest.mark.parametrize(
    "implementation",
    [pytest.param("c", marks=needs_speedups), "python"],
)


@contextlib.contextmanager
def using(implementation: str) -> Iterator[None]:
    """MaskedPayloads made inside use the C accelerator, or the pure-Python fallback."""
    with pytest.MonkeyPatch.context() as patch:
        if implementation == "python":
            patch.setattr(mask_module, "_lib", None)
        yield


@IMPLEMENTATIONS
@given(
    data=st.binary(min_size=1, max_size=3000),
    key=keys,
    cuts=st.lists(st.integers(1, 2999), max_size=12),
    extra=st.binary(max_size=10),
)
def test_masked_payload_any_chunking_matches_the_rfc(
    implementation: str, data: bytes, key: bytes, cuts: list[int], extra: bytes
) -> None:
    """Fed in any pieces (each at any offset of a larger buffer, with bytes of the next frame after the last one),
    it unmasks to the RFC's result and takes exactly its own octets."""
    with using(implementation):
        payload = MaskedPayload(len(data), key)
    masked = xor_reference(data, key)
    pieces = chunks_of(masked, cuts)
    pieces[-1] += extra
    for i, piece in enumerate(pieces):
        padded = b"??" + piece  # start at an offset: feed(data, start, end)
        taken = payload.feed(padded, 2, len(padded))
        assert taken == len(piece) - (len(extra) if i == len(pieces) - 1 else 0)
        assert payload.complete == (i == len(pieces) - 1)
    assert payload.take() == data


@IMPLEMENTATIONS
def test_masked_payload_accepts_bytearray_and_memoryview_pieces(implementation: str) -> None:
    data = os.urandom(200_000)
    key = os.urandom(4)
    masked = apply_mask(data, key)
    with using(implementation):
        payload = MaskedPayload(len(data), key)
    assert payload.feed(bytearray(masked[:70_001])) == 70_001
    assert payload.feed(memoryview(masked)[70_001:150_000]) == 150_000 - 70_001
    assert not payload.complete
    with pytest.raises(ValueError, match="payload incomplete: 150000 of 200000 octets"):
        payload.take()
    assert payload.feed(masked, 150_000) == 50_000
    assert payload.feed(b"more") == 0  # complete: nothing more is taken
    assert payload.take() == data


@needs_speedups
def test_a_large_payload_is_unmasked_into_its_own_bytes() -> None:
    """With the protocol's C part, a large masked payload arriving in pieces is unmasked straight into the bytes
    object take() returns (no scratch buffer, no final copy), with the key rotated at each piece's offset."""
    if mask_module._core is None:
        pytest.skip("the protocol's C part is not built")
    payload = bytes(range(256)) * 400 + b"xyz"  # 102,403 octets: not a multiple of 4
    key = b"\x11\x22\x33\x44"
    masked = apply_mask_py(payload, key)
    p = MaskedPayload(len(payload), key)
    buf = p._buf
    assert type(buf) is bytes
    cuts = [0, 1, 7, 70_001, 102_000, len(payload)]
    for a, b in itertools.pairwise(cuts):
        assert p.feed(b"pad" + masked[a:b] + b"tail", 3, 3 + (b - a)) == b - a
    taken = p.take()
    assert taken is buf  # the message's own object
    assert taken == payload


@needs_speedups
def test_masked_payload_buffers_are_pooled_and_the_pool_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mask_module, "_core", None)  # the cffi accelerator alone: pooled scratch buffers
    mask_module._scratch_pool.clear()
    payloads = [MaskedPayload(100_000, b"abcd") for _ in range(mask_module._POOL_MAX + 5)]
    for p in payloads:
        p.feed(bytes(100_000))
        p.take()
    assert len(mask_module._scratch_pool) == mask_module._POOL_MAX
    again = MaskedPayload(100_000, b"abcd")
    assert len(mask_module._scratch_pool) == mask_module._POOL_MAX - 1  # reused one
    again.discard()
    again.discard()  # idempotent
    assert len(mask_module._scratch_pool) == mask_module._POOL_MAX
