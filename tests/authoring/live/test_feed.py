"""Live ingest: paced folders and files, resampling to the channel rate, cutting into segments,
an RTMP publish from Debian's ffmpeg, and the sources PyAV's FFmpeg lacks."""

from __future__ import annotations

import errno
import socket
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from authoring.levels import LevelSpec
from authoring.live.cutter import SegmentCutter
from authoring.live.feed import CapturedFrame, Feed, FeedError, FeedOptions, reason
from authoring.procedural_clip import render_clip
from tests.authoring.live.helpers import ffmpeg, free_port


def write_video(path: Path, frames: int, fps: int, size: tuple[int, int]) -> None:
    """An H.264 file whose frame i is filled with the value i (so the test can tell frames apart)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for index in range(frames):
            pixels = np.full((size[1], size[0], 3), index * 8, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_a_folder_is_paced_at_its_frame_rate(tmp_path: Path) -> None:
    render_clip(tmp_path, 8, 64)
    started = time.time()
    frames = list(Feed(str(tmp_path), FeedOptions(size=64, fps=20)))
    assert [f.index for f in frames] == list(range(8))
    assert frames[0].image.shape == (64, 64, 3) and frames[0].image.dtype == np.uint8
    # frame i is delivered at start + i / fps, not as fast as it decodes
    offsets = [f.captured_at - started for f in frames]
    assert offsets[-1] >= 7 / 20 - 0.02
    assert all(later >= earlier for earlier, later in zip(offsets, offsets[1:], strict=False))


def test_a_file_is_resampled_to_the_channel_rate_scaled_and_cropped(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    write_video(video, frames=20, fps=20, size=(192, 128))
    feed = Feed(str(video), FeedOptions(size=64, fps=10, pace=False))
    assert feed.fps == 10 and "192x128" in feed.description
    frames = list(feed)
    assert len(frames) == 10  # every other source frame: 20 fps -> 10 fps
    levels = [round(float(f.image.mean()) / 8) for f in frames]
    assert levels == list(range(0, 20, 2))
    assert frames[0].image.shape == (64, 64, 3)


def test_frames_become_segments_one_frame_after_their_last_chunk() -> None:
    cutter = SegmentCutter(chunk_frames=5, segment_chunks=2, levels=[LevelSpec(2, 5)])
    image = np.zeros((64, 64, 3), np.uint8)
    segments = [cutter.add(CapturedFrame(i, image, 100.0 + i)) for i in range(26)]
    ready = [s for s in segments if s is not None]
    assert [(s.first_chunk, s.end_chunk, len(s.frames)) for s in ready] == [(0, 2, 11), (2, 4, 11)]
    assert segments.index(ready[0]) == 10  # frame 10 (the next segment's first) completes it
    assert ready[1].ready_at == 120.0 and ready[1].chunk_captured_at(3) == 115.0
    last = cutter.finish()  # frames 20..25: one interval and one frame, enough for r2n5
    assert last is not None and last.final and (last.first_chunk, last.end_chunk) == (4, 6)
    assert last.total_frames == 26 and len(last.frames) == 6
    frames = last.channel_frames  # what a catalogue task slices by frame number
    assert frames[20:26] is not None and np.array_equal(frames[21:23], last.frames[1:3])
    with pytest.raises(IndexError):
        frames[19:22]
    short = SegmentCutter(chunk_frames=5, segment_chunks=1, levels=[LevelSpec(2, 5)])
    for i in range(8):
        short.add(CapturedFrame(i, image, float(i)))
    assert short.finish() is None  # frames 5..7: shorter than an interval plus one, dropped


def test_sources_that_cannot_work_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no SRT"):
        Feed("srt://127.0.0.1:9000", FeedOptions(size=64))
    with pytest.raises(FeedError, match="does not exist"):
        Feed(str(tmp_path / "missing.mp4"), FeedOptions(size=64))
    with pytest.raises(FeedError, match="multiple of 64"):
        Feed(str(tmp_path), FeedOptions(size=100))
    with pytest.raises(FeedError, match="holds no images"):
        Feed(str(tmp_path), FeedOptions(size=64))
    started = time.monotonic()
    with pytest.raises(FeedError, match=r"no publisher connected to rtmp://.* within 1 s"):
        Feed(f"rtmp://127.0.0.1:{free_port()}/live/none", FeedOptions(size=64, open_timeout_s=1))
    assert time.monotonic() - started < 10


def test_ffmpeg_errors_are_told_in_words() -> None:
    """Issue 29: "Invalid argument returned 22" and "Immediate exit requested" said nothing."""
    invalid = reason(av.error.ArgumentError(errno.EINVAL, "Invalid argument"))
    assert "returned 22" not in invalid and "not a stream it can read" in invalid
    timed_out = reason(av.error.ExitError(-1414092869, "Immediate exit requested"))
    assert timed_out == "timed out waiting for data"


def test_connections_that_are_not_a_publisher_do_not_end_an_rtmp_feed() -> None:
    """Issue 29: the first connection to the RTMP port, even garbage, ended the channel."""
    publisher_command = ffmpeg()
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/test"
    notes: list[str] = []

    def connect_then_publish() -> None:
        for payload in (b"GET / HTTP/1.1\r\n\r\n", b"\x03" + bytes(1536), b""):
            deadline = time.monotonic() + 10
            while True:  # each attempt waits until the feed listens again
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                        conn.sendall(payload)
                        time.sleep(0.2)
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            time.sleep(0.3)
        publish = [
            publisher_command, "-loglevel", "error", "-re", "-f", "lavfi", "-i",
            "testsrc=size=160x120:rate=10", "-t", "2", "-c:v", "libx264", "-preset",
            "ultrafast", "-f", "flv", url,
        ]  # fmt: skip
        deadline = time.monotonic() + 20
        while subprocess.run(publish, stdin=subprocess.DEVNULL, timeout=60).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)

    thread = threading.Thread(target=connect_then_publish)
    thread.start()
    try:
        feed = Feed(url, FeedOptions(size=64, open_timeout_s=30), note=notes.append)
        frames = list(feed)
    finally:
        thread.join()
    assert "h264 160x120" in feed.description and len(frames) >= 10
    assert len(notes) >= 1 and all("was not an RTMP publisher" in note for note in notes)
    assert not any("returned" in note or "Immediate exit" in note for note in notes)


def test_an_rtmp_publish_from_ffmpeg_is_ingested() -> None:
    publisher_command = ffmpeg()
    url = f"rtmp://127.0.0.1:{free_port()}/live/test"
    publisher: list[subprocess.Popen[bytes]] = []

    def publish() -> None:
        time.sleep(0.5)  # the feed listens first
        publisher.append(
            subprocess.Popen(
                [
                    publisher_command,
                    "-loglevel",
                    "error",
                    "-re",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=size=160x120:rate=10",
                    "-t",
                    "3",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                    "-g",
                    "10",
                    "-f",
                    "flv",
                    url,
                ],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        )

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        feed = Feed(url, FeedOptions(size=64, open_timeout_s=30))
        assert feed.fps == 10 and not feed.pace and "h264 160x120" in feed.description
        frames = list(feed)
    finally:
        thread.join()
        for process in publisher:
            process.wait(timeout=30)
    assert 25 <= len(frames) <= 31  # 3 s at 10 fps, then the publisher hangs up: the feed ends
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[-1].image.shape == (64, 64, 3) and frames[-1].image.std() > 10  # a test pattern


def test_an_mpeg_ts_stream_over_udp_is_ingested_until_it_stops() -> None:
    publisher_command = ffmpeg()
    url = f"udp://127.0.0.1:{free_port()}"
    send = [
        publisher_command, "-loglevel", "error", "-re", "-f", "lavfi", "-i",
        "testsrc=size=160x120:rate=10", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
        "-tune", "zerolatency", "-g", "10", "-f", "mpegts", url,
    ]  # fmt: skip
    sender = threading.Timer(0.5, subprocess.run, args=(send,), kwargs={"timeout": 30})
    sender.start()
    try:
        feed = Feed(url, FeedOptions(size=64, open_timeout_s=30, read_timeout_s=2))
        frames = list(feed)  # ends 2 s after the last datagram
    finally:
        sender.join()
    assert feed.fps == 10 and "h264 160x120" in feed.description
    assert 15 <= len(frames) <= 21 and frames[-1].image.shape == (64, 64, 3)
