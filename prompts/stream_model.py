"""The stream model every package shares: its constants, its rules and the generator-identity check.

Each value here is defined once; the server, the daemon, the engines, the authoring tools and
the wire protocol import it from here (``docs/architecture.md``, "Stream model").
"""

from __future__ import annotations

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

# Latents: LATENT_CHANNELS x H/LATENT_FACTOR x W/LATENT_FACTOR; stream sizes are multiples of
# SIZE_MULTIPLE pixels (latents are 1/8 of the frame, the UNet's deepest level 1/64).
LATENT_FACTOR = 8  # pixels per latent cell
LATENT_CHANNELS = 4
SIZE_MULTIPLE = 64  # pixels


def latent_shape(width: int, height: int) -> tuple[int, int, int, int]:
    """The shape of one frame's latent, ``1 x C x H/8 x W/8``."""
    return (1, LATENT_CHANNELS, height // LATENT_FACTOR, width // LATENT_FACTOR)


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
