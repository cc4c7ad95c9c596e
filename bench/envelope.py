"""Benchmark of envelope sealing and opening against the raw primitives (docs/performance.md).

Run ``python bench/envelope.py`` for the full run (about two minutes, writes about 3 GB of
temporary files under the system temporary directory and removes them), ``--quick`` for a
fast check, ``--rss-size-mb N`` to choose the size of the large file of the memory test and
``--profile`` to print where the time of a 10 KB seal and open goes.

What is measured:

- seal and open speed of the streaming API (:class:`Sealer`, :class:`Opener`) fed 1 MiB
  pieces, as the CLI would, to 2 recipients, next to two references measured in the same
  run over the same bytes: A = libsodium secretstream XChaCha20-Poly1305 (pynacl, 64 KiB
  chunks) + SHA-256 over the ciphertext; B = ChaCha20-Poly1305 (pyca/cryptography, 64 KiB
  chunks, STREAM nonces) + SHA-256 over the ciphertext, the primitive the envelope uses;
- envelopes per second for 10 KB, and the raw cost of the fixed per-envelope cryptography;
- peak resident memory (VmHWM) of sealing and opening a file on disk to a file on disk,
  each in a fresh subprocess, at two sizes.

Every time is the best of several repetitions, and ours and the references are interleaved
within each repetition, because the machine is shared and noisy. The process is pinned to
one CPU. MB/s means 10**6 bytes of content per second.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import hmac
import io
import json
import math
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

import nacl.bindings as sodium
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from exchange.envelope import Opener, Recipient, Sealer
from exchange.envelope.hpke import open_base, seal_base
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import KeyId, OrgId
from exchange.keys.keypairs import EncryptionKey, OrgKeyPair, SigningKey, SigningPublicKey

KB: Final = 1000
KIB: Final = 1024
MIB: Final = 1024 * 1024
MB: Final = 1000 * 1000

PIECE: Final = MIB  # what the CLI reads and feeds at a time
REF_CHUNK: Final = 64 * KIB  # chunk size of both references (and the envelope default)
RECORD_KIND: Final = "referral"
NOW: Final = 1_767_225_600  # fixed clock: 2026-01-01T00:00:00Z

TARGET_RATIO: Final = 0.7
TARGET_EPS: Final = 2000
TARGET_RSS_MIB: Final = 100
RSS_GROWTH_TOLERANCE_MIB: Final = 5

_SS_STATE = sodium.crypto_secretstream_xchacha20poly1305_state
_SS_PUSH = sodium.crypto_secretstream_xchacha20poly1305_push
_SS_PULL = sodium.crypto_secretstream_xchacha20poly1305_pull
_SS_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_SS_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


# --------------------------------------------------------------------------------------------
# Keys and directory


class BenchDirectory:
    """A dict-backed stand-in for the directory (``exchange.envelope.SenderKeys``)."""

    def __init__(self, *pairs: OrgKeyPair) -> None:
        self._keys = {(p.org_id, p.signing.public.key_id): p.signing.public for p in pairs}

    def signing_key_for(self, org_id: OrgId, key_id: KeyId, at: int) -> SigningPublicKey:
        """Return the signing key of ``org_id`` with id ``key_id`` (valid at every time)."""
        del at
        try:
            return self._keys[(org_id, key_id)]
        except KeyError:
            raise KeyLookupError(f"{org_id} has no such signing key", "unknown-key") from None


@dataclass(frozen=True)
class Parties:
    """A sender, two recipients and the directory, from fixed seeds (subprocesses agree)."""

    sender: OrgKeyPair
    reader: OrgKeyPair
    recipients: tuple[Recipient, ...]
    directory: BenchDirectory


def _pair(org_id: str, seed: int) -> OrgKeyPair:
    return OrgKeyPair(
        OrgId(org_id), SigningKey(bytes([seed]) * 32), EncryptionKey(bytes([seed + 1]) * 32)
    )


def make_parties() -> Parties:
    sender = _pair("urn:106123", 1)
    la = _pair("la:356", 3)
    nhs = _pair("ods:X26ABC", 5)
    recipients = tuple(Recipient(p.org_id, p.encryption.public) for p in (la, nhs))
    return Parties(sender, la, recipients, BenchDirectory(sender))


# --------------------------------------------------------------------------------------------
# The operations timed


def seal_stream(parties: Parties, content: bytes, sink: Callable[[bytes], object]) -> None:
    """Seal ``content`` with the streaming API, feeding 1 MiB pieces."""
    sealer = Sealer(parties.sender, parties.recipients, record_kind=RECORD_KIND, created=NOW)
    sink(sealer.start())
    view = memoryview(content)
    for i in range(0, len(content), PIECE):
        for piece in sealer.feed_pieces(view[i : i + PIECE]):
            sink(piece)
    tail, _ = sealer.finish()
    sink(tail)


def open_stream(parties: Parties, envelope: bytes, sink: Callable[[bytes], object]) -> None:
    """Open ``envelope`` with the streaming API, feeding 1 MiB pieces."""
    opener = Opener(parties.directory, [parties.reader], now=NOW)
    view = memoryview(envelope)
    for i in range(0, len(envelope), PIECE):
        for piece in opener.feed_pieces(view[i : i + PIECE]):
            sink(piece)
    opener.finish_opened()


def _discard(data: bytes) -> None:
    del data


def split(content: bytes, size: int) -> list[bytes]:
    """Split into ``size``-byte bytes objects (pynacl's push accepts only ``bytes``)."""
    return [content[i : i + size] for i in range(0, len(content), size)] or [b""]


def ref_a_seal(key: bytes, chunks: list[bytes], sink: Callable[[bytes], object]) -> bytes:
    """Seal as reference A: secretstream push per chunk, SHA-256 over the ciphertext."""
    state = _SS_STATE()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    digest = hashlib.sha256()
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        ct = _SS_PUSH(state, chunk, tag=_SS_FINAL if i == last else _SS_MESSAGE)
        digest.update(ct)
        sink(ct)
    digest.digest()
    return header


def ref_a_open(key: bytes, header: bytes, chunks: list[bytes]) -> None:
    """Open as reference A: secretstream pull per chunk, SHA-256 over the ciphertext."""
    state = _SS_STATE()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    digest = hashlib.sha256()
    for ct in chunks:
        _SS_PULL(state, ct)
        digest.update(ct)
    digest.digest()


def _nonce(index: int, *, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def ref_b_seal(
    key: bytes, aad: bytes, chunks: list[bytes], sink: Callable[[bytes], object]
) -> None:
    """Seal as reference B: ChaCha20-Poly1305 per chunk, SHA-256 over the ciphertext."""
    aead = ChaCha20Poly1305(key)
    digest = hashlib.sha256()
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        ct = aead.encrypt(_nonce(i, final=i == last), chunk, aad)
        digest.update(ct)
        sink(ct)
    digest.digest()


def ref_b_open(key: bytes, aad: bytes, chunks: list[bytes]) -> None:
    """Open as reference B: ChaCha20-Poly1305 per chunk, SHA-256 over the ciphertext."""
    aead = ChaCha20Poly1305(key)
    digest = hashlib.sha256()
    last = len(chunks) - 1
    for i, ct in enumerate(chunks):
        aead.decrypt(_nonce(i, final=i == last), ct, aad)
        digest.update(ct)
    digest.digest()


# --------------------------------------------------------------------------------------------
# Timing


def best_of(reps: int, loops: int, funcs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Return the best time of one call of each function, interleaving them in each rep."""
    best = dict.fromkeys(funcs, math.inf)
    names = list(funcs)
    for rep in range(reps):
        # Rotate the order so no function always runs first (caches, frequency ramps).
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            fn = funcs[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / loops)
    return best


def loops_for(size: int) -> int:
    """Repeat small payloads so one timed block takes about 0.1 s or more."""
    return max(1, (20 * MB) // max(size, 1)) if size < MB else 1


@dataclass(frozen=True)
class SpeedRow:
    """Seal or open speed of one payload size: ours and both references, in MB/s."""

    label: str
    size: int
    op: str
    ours: float
    ref_a: float
    ref_b: float

    @property
    def ratio_a(self) -> float:
        """Our speed over reference A's."""
        return self.ours / self.ref_a

    @property
    def ratio_b(self) -> float:
        """Our speed over reference B's."""
        return self.ours / self.ref_b


def measure_size(parties: Parties, label: str, size: int, reps: int) -> list[SpeedRow]:
    content = os.urandom(size)
    envelope_parts: list[bytes] = []
    seal_stream(parties, content, envelope_parts.append)
    envelope = b"".join(envelope_parts)
    del envelope_parts
    key_a = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    key_b = os.urandom(32)
    aad = os.urandom(32)
    chunks = split(content, REF_CHUNK)
    # The ciphertexts to open are made here; the timed seals discard theirs, as ours does.
    ct_a: list[bytes] = []
    header_a = ref_a_seal(key_a, chunks, ct_a.append)
    ct_b: list[bytes] = []
    ref_b_seal(key_b, aad, chunks, ct_b.append)
    loops = loops_for(size)
    seal_t = best_of(
        reps,
        loops,
        {
            "ours": lambda: seal_stream(parties, content, _discard),
            "a": lambda: ref_a_seal(key_a, chunks, _discard),
            "b": lambda: ref_b_seal(key_b, aad, chunks, _discard),
        },
    )
    open_t = best_of(
        reps,
        loops,
        {
            "ours": lambda: open_stream(parties, envelope, _discard),
            "a": lambda: ref_a_open(key_a, header_a, ct_a),
            "b": lambda: ref_b_open(key_b, aad, ct_b),
        },
    )
    rows = []
    for op, t in (("seal", seal_t), ("open", open_t)):
        mbps = {k: size / v / MB for k, v in t.items()}
        rows.append(SpeedRow(label, size, op, mbps["ours"], mbps["a"], mbps["b"]))
    return rows


@dataclass(frozen=True)
class FixedCost:
    """Per-envelope rates at 10 KB and the raw cost of the fixed cryptography (µs)."""

    seal_eps: float
    open_eps: float
    components: dict[str, float]


def measure_fixed(parties: Parties, reps: int) -> FixedCost:
    content = os.urandom(10 * KB)
    parts: list[bytes] = []
    seal_stream(parties, content, parts.append)
    envelope = b"".join(parts)
    loops = 500
    whole = best_of(
        reps,
        loops,
        {
            "seal": lambda: seal_stream(parties, content, _discard),
            "open": lambda: open_stream(parties, envelope, _discard),
        },
    )
    signing = parties.sender.signing
    public = signing.public
    message = os.urandom(32 + 24)
    signature = signing.sign(message)
    peer = parties.recipients[0].key.to_cryptography()
    info = os.urandom(120)
    ikm = os.urandom(32)
    enc, wrapped = seal_base(peer, info, os.urandom(32), ikm)
    private = parties.reader.encryption.to_cryptography()
    x_private = X25519PrivateKey.generate()
    key_b = os.urandom(32)
    aad = os.urandom(32)
    chunks = [content]
    parts_us = best_of(
        reps,
        loops,
        {
            "HPKE seal (ours, pyca X25519 + HMAC)": lambda: seal_base(peer, info, key_b, ikm),
            "HPKE open (pyca Suite.decrypt)": lambda: open_base(private, info, enc, wrapped),
            "X25519 exchange (one scalar mult)": lambda: x_private.exchange(peer),
            "X25519 key from seed (one scalar mult)": lambda: X25519PrivateKey.from_private_bytes(
                ikm
            ).public_key(),
            "Ed25519 sign (pynacl)": lambda: signing.sign(message),
            "Ed25519 verify (pynacl crypto_sign_open)": lambda: public.verify(message, signature),
            "10 KB ChaCha20-Poly1305 + SHA-256 (ref B)": lambda: ref_b_seal(
                key_b, aad, chunks, _discard
            ),
            "10 KB SHA-256": lambda: hashlib.sha256(content).digest(),
            "HMAC-SHA256 (one, short input)": lambda: hmac.digest(key_b, info, "sha256"),
        },
    )
    components = {k: v * 1e6 for k, v in parts_us.items()}
    components["seal, whole envelope"] = whole["seal"] * 1e6
    components["open, whole envelope"] = whole["open"] * 1e6
    return FixedCost(1 / whole["seal"], 1 / whole["open"], components)


# --------------------------------------------------------------------------------------------
# Peak memory, in subprocesses


def vm_hwm_kib() -> int:
    """Return this process's peak resident set size (VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(mode: str, src: Path, dst: Path) -> None:
    """Seal or open ``src`` into ``dst`` streaming 1 MiB pieces; print peak RSS as JSON."""
    parties = make_parties()
    baseline = vm_hwm_kib()
    result: dict[str, object] = {}
    with src.open("rb") as fin, dst.open("wb") as fout:
        if mode == "seal":
            sealer = Sealer(
                parties.sender, parties.recipients, record_kind=RECORD_KIND, created=NOW
            )
            fout.write(sealer.start())
            while piece := fin.read(PIECE):
                fout.writelines(sealer.feed_pieces(piece))
            tail, _ = sealer.finish()
            fout.write(tail)
        else:
            # The plaintext goes to dst as the quarantine file; finish_opened releases it.
            opener = Opener(parties.directory, [parties.reader], now=NOW)
            while piece := fin.read(PIECE):
                fout.writelines(opener.feed_pieces(piece))
            opener.finish_opened()
    result["baseline_kib"] = baseline
    result["peak_kib"] = vm_hwm_kib()
    print(json.dumps(result))


@dataclass(frozen=True)
class RssRow:
    """Peak memory of one subprocess that sealed or opened a file of ``size`` bytes."""

    size: int
    op: str
    baseline_mib: float
    peak_mib: float
    maxrss_mib: float
    seconds: float


def run_child(mode: str, src: Path, dst: Path, size: int) -> tuple[RssRow, dict[str, object]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", mode, str(src), str(dst)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)  # noqa: S603 - our own script
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be a maximum over all).
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the {mode} child failed with exit code {proc.returncode}")
    result = json.loads(out)
    row = RssRow(
        size=size,
        op=mode,
        baseline_mib=result["baseline_kib"] / KIB,
        peak_mib=result["peak_kib"] / KIB,
        maxrss_mib=usage.ru_maxrss / KIB,
        seconds=seconds,
    )
    return row, result


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(PIECE):
            digest.update(block)
    return digest.hexdigest()


def measure_rss(sizes: list[int]) -> list[RssRow]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="envelope-bench-") as tmp:
        base = Path(tmp)
        for size in sizes:
            plain, sealed, opened = base / "plain", base / "sealed", base / "opened"
            digest = hashlib.sha256()
            with plain.open("wb") as f:
                for i in range(0, size, PIECE):
                    block = os.urandom(min(PIECE, size - i))
                    digest.update(block)
                    f.write(block)
            row, _ = run_child("seal", plain, sealed, size)
            rows.append(row)
            plain.unlink()
            row, _ = run_child("open", sealed, opened, size)
            rows.append(row)
            if _file_sha256(opened) != digest.hexdigest():
                raise RuntimeError("the opened content does not match what was sealed")
            if opened.stat().st_size != size:
                raise RuntimeError("the opened file has the wrong size")
            sealed.unlink()
            opened.unlink()
    return rows


# --------------------------------------------------------------------------------------------
# Report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def machine_lines() -> list[str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("cryptography", "PyNaCl", "cffi")
    )
    from cryptography.hazmat.backends.openssl import backend

    machine = (
        f"- machine: {os.cpu_count()} CPUs ({model}), {platform.machine()}, "
        f"{platform.system()} {platform.release()}"
    )
    python = (
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        f"{versions} (bundled libsodium); {backend.openssl_version_text()}"
    )
    return [machine, f"- pinned to CPU {sorted(os.sched_getaffinity(0))}", python]


def human(size: int) -> str:
    for unit, name in ((MIB * KIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} B"


def print_report(
    speed: list[SpeedRow], fixed: FixedCost, rss: list[RssRow], *, reps: int, quick: bool
) -> None:
    print(f"# Envelope benchmark{' (--quick)' if quick else ''}\n")
    print("\n".join(machine_lines()))
    print(f"- best of {reps} interleaved repetitions; 2 recipients; 1 MiB feeds; MB = 10^6 B\n")

    print("## Throughput\n")
    print(
        "| payload | op | ours MB/s | ref A MB/s (secretstream+SHA-256) | ours/A "
        "| ref B MB/s (pyca ChaCha20-Poly1305+SHA-256) | ours/B | ≥0.7×A |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in speed:
        target = verdict(r.ratio_a >= TARGET_RATIO) if r.size >= MIB else "n/a"
        print(
            f"| {r.label} | {r.op} | {r.ours:,.0f} | {r.ref_a:,.0f} | {r.ratio_a:.2f} "
            f"| {r.ref_b:,.0f} | {r.ratio_b:.2f} | {target} |"
        )

    print("\n## 10 KB envelopes, one core\n")
    print("| op | envelopes/s | µs/envelope | target | result |")
    print("|---|---:|---:|---:|---|")
    for op, eps in (("seal", fixed.seal_eps), ("open", fixed.open_eps)):
        print(
            f"| {op} | {eps:,.0f} | {1e6 / eps:,.0f} | ≥{TARGET_EPS:,} "
            f"| {verdict(eps >= TARGET_EPS)} |"
        )
    print("\nRaw cost of the pieces (µs per call, same run):\n")
    print("| component | µs |")
    print("|---|---:|")
    for name, us in fixed.components.items():
        print(f"| {name} | {us:,.1f} |")
    c = fixed.components
    seal_raw = (
        2 * c["HPKE seal (ours, pyca X25519 + HMAC)"]
        + 2 * c["Ed25519 sign (pynacl)"]
        + c["10 KB ChaCha20-Poly1305 + SHA-256 (ref B)"]
    )
    open_raw = (
        c["HPKE open (pyca Suite.decrypt)"]
        + 2 * c["Ed25519 verify (pynacl crypto_sign_open)"]
        + c["10 KB ChaCha20-Poly1305 + SHA-256 (ref B)"]
    )
    print(
        f"\nseal: 2 HPKE seals + 2 signs + payload (AEAD + SHA-256) = {seal_raw:,.0f} µs of "
        f"{c['seal, whole envelope']:,.0f} µs ({seal_raw / c['seal, whole envelope']:.0%}); "
        f"open: 1 HPKE open + 2 verifies + payload = {open_raw:,.0f} µs of "
        f"{c['open, whole envelope']:,.0f} µs ({open_raw / c['open, whole envelope']:.0%})."
    )

    print("\n## Peak memory (file on disk → file on disk, fresh subprocess each)\n")
    print("| size | op | RSS after imports MiB | peak VmHWM MiB | ru_maxrss MiB | seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rss:
        print(
            f"| {human(r.size)} | {r.op} | {r.baseline_mib:.1f} | {r.peak_mib:.1f} "
            f"| {r.maxrss_mib:.1f} | {r.seconds:.1f} |"
        )
    print(
        "\nVmHWM is read by the child itself. ru_maxrss comes from wait4 and is not clean: "
        "Linux carries the parent's resident size at fork into the child's maximum. Seconds "
        "include interpreter start and disk I/O."
    )

    print("\n## Targets\n")
    print("| target | measured | result |")
    print("|---|---|---|")
    big = [r for r in speed if r.size >= MIB]
    for r in big:
        print(
            f"| {r.op} {r.label}: ≥{TARGET_RATIO} × ref A | {r.ratio_a:.2f} "
            f"| {verdict(r.ratio_a >= TARGET_RATIO)} |"
        )
    for op, eps in (("seal", fixed.seal_eps), ("open", fixed.open_eps)):
        print(
            f"| {op} 10 KB: ≥{TARGET_EPS:,} envelopes/s per core | {eps:,.0f} "
            f"| {verdict(eps >= TARGET_EPS)} |"
        )
    largest = max(r.size for r in rss)
    smallest = min(r.size for r in rss)
    for op in ("seal", "open"):
        peak_big = next(r.peak_mib for r in rss if r.size == largest and r.op == op)
        peak_small = next(r.peak_mib for r in rss if r.size == smallest and r.op == op)
        growth = peak_big - peak_small
        print(
            f"| {op} {human(largest)}: peak RSS < {TARGET_RSS_MIB} MiB | {peak_big:.1f} MiB "
            f"| {verdict(peak_big < TARGET_RSS_MIB)} |"
        )
        print(
            f"| {op}: no growth {human(smallest)} → {human(largest)} "
            f"(≤{RSS_GROWTH_TOLERANCE_MIB} MiB) | {growth:+.1f} MiB "
            f"| {verdict(growth <= RSS_GROWTH_TOLERANCE_MIB)} |"
        )


def profile(parties: Parties) -> None:
    content = os.urandom(10 * KB)
    parts: list[bytes] = []
    seal_stream(parties, content, parts.append)
    envelope = b"".join(parts)
    for name, fn in (
        ("seal", lambda: seal_stream(parties, content, _discard)),
        ("open", lambda: open_stream(parties, envelope, _discard)),
    ):
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(2000):
            fn()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(f"## cProfile: 2,000 × 10 KB {name}, by own time\n\n```")
        print(out.getvalue().strip())
        print("```\n")


def pin_one_cpu() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[0]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller files")
    parser.add_argument(
        "--rss-size-mb",
        type=int,
        default=None,
        help="size in MiB of the large file of the memory test (default 1024; 200 with --quick)",
    )
    parser.add_argument("--profile", action="store_true", help="only profile 10 KB seal/open")
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.rss_child:
        mode, src, dst = args.rss_child
        rss_child(mode, Path(src), Path(dst))
        return 0

    pin_one_cpu()
    parties = make_parties()
    if args.profile:
        profile(parties)
        return 0

    reps = 3 if args.quick else 7
    large_mib = args.rss_size_mb or (200 if args.quick else 1024)
    if large_mib < 2:
        parser.error("--rss-size-mb must be at least 2")
    small_mib = 100 if large_mib > 100 else large_mib // 10
    sizes = [("10 KB", 10 * KB), ("1 MiB", MIB), ("100 MiB", 100 * MIB)]
    # Memory first, while this process is small: Linux carries the parent's peak into a
    # child's ru_maxrss across fork and exec, so only VmHWM read in the child is clean.
    rss = measure_rss([small_mib * MIB, large_mib * MIB])
    speed = []
    for label, size in sizes:
        speed.extend(
            measure_size(parties, label, size, 2 if size >= 100 * MIB and args.quick else reps)
        )
    fixed = measure_fixed(parties, reps)
    print_report(speed, fixed, rss, reps=reps, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
