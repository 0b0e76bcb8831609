"""Reading and writing what the stages share, one idea a file: files.py (atomic writes, PNG frames and frame
folders, numbered user sequences, JSON and NumPy), video.py (probing, decoding and encoding videos with the bundled
ffmpeg), audio.py (the source's sound in the videos made from a clip) and prores.py (ProRes 4444 with alpha)."""

from omnimatte.io.audio import SourceAudio
from omnimatte.io.files import (
    SequenceNamingError,
    atomic_dir,
    atomic_path,
    frame_name,
    list_frames,
    load_json,
    name_list,
    numbered_pngs,
    read_frames,
    read_png,
    save_json,
    save_npy,
    write_frames,
    write_image,
    write_png,
)
from omnimatte.io.prores import write_alpha_video
from omnimatte.io.video import (
    IMAGE_SUFFIXES,
    count_packets,
    decoded_as,
    ffmpeg_binary,
    has_encoder,
    probe_video,
    rate_text,
    read_video,
    sequence_images,
    write_video,
)

__all__ = ["IMAGE_SUFFIXES", "SequenceNamingError", "SourceAudio", "atomic_dir", "atomic_path", "count_packets",
           "decoded_as", "ffmpeg_binary", "frame_name", "has_encoder", "list_frames", "load_json", "name_list",
           "numbered_pngs", "probe_video", "rate_text", "read_frames", "read_png", "read_video", "save_json",
           "save_npy", "sequence_images", "write_alpha_video", "write_frames", "write_image", "write_png",
           "write_video"]
