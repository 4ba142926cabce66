"""Small protocol inputs for tests and benchmarks: what a page sends to open a fixture stream,
and two malformed HTTP requests a hostile client sends the media server.

Shipped with the package beside ``prompts.testing`` (whose seeded init states it encodes) so
that benchmarks build these inputs the way tests do without importing ``tests/``.
"""

from __future__ import annotations

from prompts.init_state import encode_init_state
from prompts.stream_model import CHUNK_RESET, NOISE_SEED, PREV_LATENT_WEIGHT
from prompts.testing import FIXTURE_FPS, seeded_latent
from wire.daemon import StreamSetup

FIXTURE_INIT_SEED = 5  # seed of a fixture stream's init state (``seeded_latent``)
MALFORMED_REQUEST = b"GET / HTTP/1.1\r\nX\r\n\r\n"  # 21 bytes: a header line without a colon
PARTIAL_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # headers never finished


def fixture_setup(
    generator_id: str,
    *,
    size: int,
    chunk_frames: int,
    fps: float = FIXTURE_FPS,
    rule: str = CHUNK_RESET,
) -> StreamSetup:
    """The setup of a ``size`` x ``size`` stream with the stream model's noise seed and weight."""
    return StreamSetup(
        generator_id=generator_id,
        width=size,
        height=size,
        fps=fps,
        noise_seed=NOISE_SEED,
        prev_latent_weight=PREV_LATENT_WEIGHT,
        prev_latent_rule=rule,
        chunk_frames=chunk_frames,
    )


def sized_open(generator_id: str, size: int, chunk_frames: int) -> tuple[StreamSetup, bytes]:
    """The stream setup and init state of a ``size`` x ``size`` stream of ``chunk_frames``-frame
    chunks (what a page with a large stream opens)."""
    setup = fixture_setup(generator_id, size=size, chunk_frames=chunk_frames)
    return setup, encode_init_state(seeded_latent(size, FIXTURE_INIT_SEED))
