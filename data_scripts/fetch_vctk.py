"""Download and extract the CSTR VCTK corpus, version 0.92 (University of Edinburgh; CC BY 4.0).

Official page: https://doi.org/10.7488/ds/2645  (Edinburgh DataShare, item 10283/3443)
Archive:       https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip
               11,747,302,977 bytes (about 10.9 GB); FLAC inside, so about the same once extracted.
               DataShare has moved its download links before: if this URL fails, copy the
               current link of VCTK-Corpus-0.92.zip from the official page and pass it with --url.
MD5:           8a6ba2946b36fcbef0212cad601f4bfa
               (pinned from published sources, not measured here: the MD5 DataShare lists for
               the file, also used by torchaudio's VCTK_092 dataset.)

The zip has no top-level folder, so it is extracted into ``<dest>/VCTK-Corpus-0.92/``::

    <dest>/VCTK-Corpus-0.92.zip
    <dest>/VCTK-Corpus-0.92/txt/p225/p225_001.txt ...
    <dest>/VCTK-Corpus-0.92/wav48_silence_trimmed/p225/p225_001_mic1.flac ...

Then::

    from ttslab.data.readers import read_vctk
    corpus = read_vctk("<dest>/VCTK-Corpus-0.92", mic="mic1")

The older release 0.80 (``VCTK-Corpus.tar.gz``, WAV in ``wav48/``) is no longer offered for
download; ``read_vctk`` still reads it if you have a copy.

Usage: python data_scripts/fetch_vctk.py [--dest data/corpora] [--url URL] [--checksum ALG:HEX]
"""

from __future__ import annotations

import sys

import _download

URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip"
ARCHIVE_NAME = "VCTK-Corpus-0.92.zip"
CHECKSUM = {"md5": "8a6ba2946b36fcbef0212cad601f4bfa"}
CORPUS_FOLDER = "VCTK-Corpus-0.92"


def main(argv: list[str] | None = None) -> None:
    args = _download.make_parser(__doc__).parse_args(argv)
    corpus_dir = args.dest / CORPUS_FOLDER
    # If a later release of the zip gains a top-level folder, the reader finds it one level down.
    markers = (corpus_dir / "txt", corpus_dir / CORPUS_FOLDER / "txt")
    _download.fetch_and_extract(
        args.url or URL, args.dest / ARCHIVE_NAME, corpus_dir, markers,
        expected=args.checksum or CHECKSUM, no_verify=args.no_verify, remove_archive=args.remove_archive)
    print(f'done. Load it with:\n  from ttslab.data.readers import read_vctk\n  corpus = read_vctk("{corpus_dir}")')


if __name__ == "__main__":
    sys.exit(_download.run(main))
