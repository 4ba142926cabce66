"""Live channels: a feed (camera stand-in, RTMP publish, UDP MPEG-TS, ...) becomes a growing
prompt ladder with a sliding window, fitted segment by segment as the feed arrives.

Modules: ``feed`` (PyAV ingest, paced and resampled to the channel's frame rate),
``segments`` (frames cut into closed segments at chunk boundaries), ``publisher`` (the live
ladder: chunks in order, gaps, the window, the end of the feed), ``channel`` (the rolling fit:
one task per segment and level, deadlines, retries, degraded budgets).
"""
