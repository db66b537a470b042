"""Download and extract LibriTTS subsets (Zen et al., 2019; CC BY 4.0; OpenSLR resource 60).

Official page: https://www.openslr.org/60/
Archives:      https://www.openslr.org/resources/60/<subset>.tar.gz, one per subset
               (mirrors are listed on the official page; pass one with --base-url).

Approximate archive sizes (24 kHz 16-bit WAV, 585 hours and 2,456 speakers in all):

    dev-clean         1.2 GB     test-clean        1.2 GB     train-clean-100   7.7 GB
    dev-other         0.9 GB     test-other        1.0 GB     train-clean-360  27 GB
                                                              train-other-500  44 GB

MD5 checksums (pinned from published sources, not measured here: the MD5 values OpenSLR
publishes for resource 60, as carried by torchaudio's LIBRITTS dataset and other projects
that verify these downloads):

    dev-clean        0c3076c1e5245bb3f0af7d82087ee207
    dev-other        815555d8d75995782ac3ccd7f047213d
    test-clean       7bed3bdb047c4c197f1ad3bc412db59f
    test-other       ae3258249472a13b5abef2a816f733e4
    train-clean-100  4a8c202b78fe1bc0c47916a98f3a2ea8
    train-clean-360  a84ef10ddade5fd25df69596a2767b2d
    train-other-500  7b181dd5ace343a5f38427999684aa6f

Every archive unpacks into ``LibriTTS/<subset>/``, so subsets fetched one after the other
share one folder::

    <dest>/dev-clean.tar.gz
    <dest>/LibriTTS/dev-clean/84/121123/84_121123_000007_000000.wav (+ .normalized.txt) ...

Then::

    from ttslab.data.readers import read_libritts
    corpus = read_libritts("<dest>/LibriTTS", subsets=["dev-clean"])

Usage: python data_scripts/fetch_libritts.py [--dest data/corpora] [--subsets dev-clean train-clean-100 | all]
"""

from __future__ import annotations

import sys

import _download

BASE_URL = "https://www.openslr.org/resources/60"
CHECKSUMS = {
    "dev-clean": {"md5": "0c3076c1e5245bb3f0af7d82087ee207"},
    "dev-other": {"md5": "815555d8d75995782ac3ccd7f047213d"},
    "test-clean": {"md5": "7bed3bdb047c4c197f1ad3bc412db59f"},
    "test-other": {"md5": "ae3258249472a13b5abef2a816f733e4"},
    "train-clean-100": {"md5": "4a8c202b78fe1bc0c47916a98f3a2ea8"},
    "train-clean-360": {"md5": "a84ef10ddade5fd25df69596a2767b2d"},
    "train-other-500": {"md5": "7b181dd5ace343a5f38427999684aa6f"},
}
SUBSETS = tuple(CHECKSUMS)
DEFAULT_SUBSETS = ("dev-clean",)
CORPUS_FOLDER = "LibriTTS"


def main(argv: list[str] | None = None) -> None:
    parser = _download.make_parser(__doc__, single_archive=False)
    parser.add_argument("--subsets", nargs="+", default=list(DEFAULT_SUBSETS), choices=SUBSETS + ("all",),
                        metavar="SUBSET", help=f"subsets to fetch, or 'all' (default: dev-clean); choices: {', '.join(SUBSETS)}")
    parser.add_argument("--base-url", default=BASE_URL, help=f"folder URL holding the archives (default: {BASE_URL})")
    args = parser.parse_args(argv)
    subsets = list(SUBSETS) if "all" in args.subsets else list(dict.fromkeys(args.subsets))
    for subset in subsets:
        archive = f"{subset}.tar.gz"
        _download.fetch_and_extract(
            f"{args.base_url.rstrip('/')}/{archive}", args.dest / archive, args.dest,
            args.dest / CORPUS_FOLDER / subset, expected=CHECKSUMS[subset], no_verify=args.no_verify,
            remove_archive=args.remove_archive)
    print("done. Load it with:\n  from ttslab.data.readers import read_libritts\n"
          f'  corpus = read_libritts("{args.dest / CORPUS_FOLDER}", subsets={subsets!r})')


if __name__ == "__main__":
    sys.exit(_download.run(main))
