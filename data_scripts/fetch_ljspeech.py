"""Download and extract LJSpeech-1.1 (Keith Ito & Linda Johnson, 2017; public domain).

Official page: https://keithito.com/LJ-Speech-Dataset/
Archive:       https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2
               2,748,572,632 bytes (about 2.6 GB); about 3.8 GB once extracted.
SHA-256:       be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5
               (pinned from published sources, not measured here: torchaudio's LJSPEECH
               dataset checks downloads against it, and the Homebrew formula for this
               archive carries the same value.)

Result::

    <dest>/LJSpeech-1.1.tar.bz2
    <dest>/LJSpeech-1.1/metadata.csv
    <dest>/LJSpeech-1.1/wavs/LJ001-0001.wav ...

Then::

    from ttslab.data.readers import read_ljspeech
    corpus = read_ljspeech("<dest>/LJSpeech-1.1")

Usage: python data_scripts/fetch_ljspeech.py [--dest data/corpora] [--url URL] [--checksum ALG:HEX]
"""

from __future__ import annotations

import sys

import _download

URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
ARCHIVE_NAME = "LJSpeech-1.1.tar.bz2"
CHECKSUM = {"sha256": "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"}
CORPUS_FOLDER = "LJSpeech-1.1"


def main(argv: list[str] | None = None) -> None:
    args = _download.make_parser(__doc__).parse_args(argv)
    dest = args.dest
    _download.fetch_and_extract(
        args.url or URL, dest / ARCHIVE_NAME, dest, dest / CORPUS_FOLDER / "metadata.csv",
        expected=args.checksum or CHECKSUM, no_verify=args.no_verify, remove_archive=args.remove_archive)
    print(f'done. Load it with:\n  from ttslab.data.readers import read_ljspeech\n  corpus = read_ljspeech("{dest / CORPUS_FOLDER}")')


if __name__ == "__main__":
    sys.exit(_download.run(main))
