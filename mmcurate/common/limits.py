"""Limits on what one input may make mmcurate hold, shared by every reader of that input.

A file's declared sizes (a frame count, an array shape, a YAML alias) are claims, not sizes: the
readers check them against these limits, and against what the file really holds, before they
allocate. Each number is chosen so that real work never meets it; where a stage has more to
say (ingest's frame bytes per clip), its own module holds the rest (``mmcurate/ingest/limits.py``).
"""

from __future__ import annotations

#: Most frames one clip may keep: an hour at one frame a second (``--frames``, duration x ``--fps``,
#: the frames of a BalanceMM HDF5 file).
MAX_FRAMES_PER_CLIP = 3600
#: Most bytes of frames one clip may hold at once (decoded frames in ingest, stored JPEG bytes of a
#: BalanceMM HDF5 file).
MAX_FRAME_BYTES_PER_CLIP = 2 << 30
#: Largest single stored frame (a JPEG of an 8K frame at quality 100 is about 20 MB).
MAX_STORED_FRAME_BYTES = 64 << 20
#: Most pixels of one stored frame a reader decodes (8192 x 8192).
MAX_FRAME_PIXELS = 8192 * 8192
#: Highest audio sample rate (``--sample-rate``, a feature recipe's): the highest rate audio is
#: recorded at (FLAC itself stops at 655350 Hz).
MAX_SAMPLE_RATE = 384_000
#: Bounds of an audio feature recipe: an FFT of 2**16 samples (1.4 s at 48 kHz), 4096 mel bands,
#: a fixed length of a million frames (2.8 hours at a 10-ms hop), tiling to an hour.
MAX_FFT = 1 << 16
MAX_MELS = 4096
MAX_TARGET_FRAMES = 1_000_000
MAX_TILE_SECONDS = 3600.0
