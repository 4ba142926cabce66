"""The stream model every package shares: its constants, its rules and the generator-identity check.

Each value here is defined once; the server, the daemon, the engines, the authoring tools and
the wire protocol import it from here (``docs/architecture.md``, "Stream model").
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import UserError

# The generation state of a stream (design section 2): the UNet input of a group of frames is
# ``w * prev + (1 - w) * noise`` with fixed noise from ``numpy.random.RandomState(NOISE_SEED)``.
NOISE_SEED = 88  # the original release's RandomState seed
PREV_LATENT_WEIGHT = 0.05  # w, the original release's previous-latent mix

# Where ``prev`` comes from at chunk starts (architecture.md, "Generation groups").
CHUNK_RESET = "chunk-reset"  # our streams: every chunk starts from the init latent (random access)
CHAINED = "chained"  # the original release's rule: state runs across chunks
PREV_LATENT_RULES = (CHUNK_RESET, CHAINED)

# The prompt: a context of CONTEXT_TOKENS x CONTEXT_DIM (SD 2.x / OpenCLIP-H text context).
CONTEXT_TOKENS = 77
CONTEXT_DIM = 1024
CONTEXT_SHAPE = (CONTEXT_TOKENS, CONTEXT_DIM)

# Latents: a generator's latent geometry says how many channels it has and how many pixels one
# cell covers; a stream's latents are ``channels x H/factor x W/factor``. SD-Turbo and TAESD (and
# the tiny generators, which share their shapes) use SD_LATENT; a generator of our own may declare
# another (engines/variants.py), and a manifest records the one its prompts were fitted with.
# Stream sizes are multiples of SIZE_MULTIPLE pixels (the UNet's deepest level is 1/64 of a frame).
SIZE_MULTIPLE = 64  # pixels
LATENT_FACTORS = (1, 2, 4, 8, 16)  # pixels per latent cell a geometry may use (each divides 64)
MAX_LATENT_CHANNELS = 64


@dataclass(frozen=True)
class LatentGeometry:
    """Channels of a latent and the pixels per latent cell (its downsampling factor)."""

    channels: int
    factor: int

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= MAX_LATENT_CHANNELS:
            raise ValueError(
                f"latent channels must be 1..{MAX_LATENT_CHANNELS}, got {self.channels}"
            )
        if self.factor not in LATENT_FACTORS:
            raise ValueError(f"latent factor must be one of {LATENT_FACTORS}, got {self.factor}")

    def shape(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The shape of one frame's latent, ``1 x C x H/factor x W/factor``."""
        return (1, self.channels, height // self.factor, width // self.factor)


SD_LATENT = LatentGeometry(channels=4, factor=8)  # SD's VAE and TAESD: 4 x H/8 x W/8


def size_problem(width: int, height: int) -> str | None:
    """Why a frame size cannot be a stream size, or None when it can."""
    if (
        width < SIZE_MULTIPLE
        or height < SIZE_MULTIPLE
        or width % SIZE_MULTIPLE
        or height % SIZE_MULTIPLE
    ):
        return f"size {width}x{height} is not a positive multiple of {SIZE_MULTIPLE} pixels"
    return None


class GeneratorMismatchError(UserError, ValueError):
    """Prompts were fitted on other weights than the generator that would decode them."""

    def __init__(self, expected: str, actual: str, what: str = "chunk") -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{what} was made for generator {expected!r} but this generator is {actual!r}: "
            "prompts only mean something for the exact weights they were fitted on; load the "
            "matching weights (see docs/engines.md) or fit the prompts again for these"
        )


def check_generator(expected: str, actual: str, what: str = "chunk") -> None:
    """The one generator-identity check: raises GeneratorMismatchError unless the ids are equal."""
    if expected != actual:
        raise GeneratorMismatchError(expected, actual, what)
