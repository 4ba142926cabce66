"""Live channels: a feed (camera stand-in, RTMP publish, UDP MPEG-TS, ...) becomes a growing
prompt ladder with a sliding window, fitted segment by segment as the feed arrives.

Modules: ``feed`` (PyAV ingest, paced and resampled to the channel's frame rate),
``cutter`` (frames cut into closed segments at chunk boundaries), ``ingest`` (the thread that
cuts the feed), ``publisher`` (the live ladder: chunks in order, gaps, the window, the end of
the feed), ``cells`` (each segment and level from arrival to publication: deadlines, retries,
gaps), ``batches`` (which ready cells share a task), ``policy`` (degraded budgets), ``pump``
(the thread that collects finished tasks), ``channel`` (the rolling fit that drives them all).
"""
