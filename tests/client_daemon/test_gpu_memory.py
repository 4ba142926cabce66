"""On a GPU: pages that leave mid-chunk leave no GPU memory behind."""

from __future__ import annotations

import asyncio
import gc

import pytest

from client_daemon.client import DaemonClient
from client_daemon.daemon import Daemon
from client_daemon.settings import DaemonSettings
from prompts.chunk import encode_chunk
from tests.client_daemon.helpers import make_chunk, open_message
from wire.daemon import StreamSetup

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


async def test_abandoned_pages_free_their_gpu_memory() -> None:
    from engines import load_generator

    generator = load_generator("tiny", device="cuda")
    gid = generator.generator_id
    request = open_message(gid)
    setup = StreamSetup.from_fields(request.stream.to_fields())
    chunks = [encode_chunk(make_chunk(i, gid)) for i in range(3)]
    async with Daemon(generator, DaemonSettings(port=0)) as daemon:

        async def visit(leave_early: bool) -> None:
            async with await DaemonClient.connect(daemon.url) as page:
                await page.open(setup, request.init_state)
                for index, data in enumerate(chunks):
                    await page.send_chunk(0, index, data)
                if not leave_early:
                    for _ in chunks:
                        await page.chunk_segments()

        await visit(leave_early=False)  # warm-up: kernels, allocator pools
        gc.collect()
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        for _ in range(5):
            await visit(leave_early=True)
        await visit(leave_early=False)  # queued behind the leavers: they are done
        await asyncio.sleep(0.1)
        gc.collect()
        torch.cuda.synchronize()
        assert torch.cuda.memory_allocated() <= baseline
