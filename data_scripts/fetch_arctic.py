"""Download and extract CMU ARCTIC voices (Kominek & Black, CMU, 2003; permissive BSD-style licence).

Official page: http://festvox.org/cmu_arctic/
Archives:      http://festvox.org/cmu_arctic/packed/cmu_us_<voice>_arctic.tar.bz2, one per voice,
               70-100 MB each (about 1,130 prompts, roughly an hour of 16 kHz speech per voice).
               The voices of the original release: bdl (US male), slt (US female),
               clb (US female), rms (US male), jmk (Canadian male), awb (Scottish male),
               ksp (Indian male); later voices: aew ahw aup axb eey fem gka ljm lnh rxr slp.

ARCTIC is parallel: every voice reads the same prompts, which makes it the usual corpus
for voice conversion and for comparing speakers on identical text.

SHA-256 checksums (pinned from published sources, not measured here: torchaudio's CMUARCTIC
dataset verifies downloads against them, and the Homebrew formula for these archives
carries the same values): see ``CHECKSUMS`` below.

All voices are extracted side by side into ``<dest>/cmu_arctic/``::

    <dest>/cmu_us_slt_arctic.tar.bz2
    <dest>/cmu_arctic/cmu_us_slt_arctic/etc/txt.done.data
    <dest>/cmu_arctic/cmu_us_slt_arctic/wav/arctic_a0001.wav ...

Then::

    from ttslab.data.readers import read_arctic
    corpus = read_arctic("<dest>/cmu_arctic")                       # every voice fetched
    slt = read_arctic("<dest>/cmu_arctic/cmu_us_slt_arctic")        # one voice

Usage: python data_scripts/fetch_arctic.py [--dest data/corpora] [--voices slt bdl | all]
"""

from __future__ import annotations

import sys

import _download

BASE_URL = "http://festvox.org/cmu_arctic/packed"
CHECKSUMS = {
    "aew": {"sha256": "645cb33c0f0b2ce41384fdd8d3db2c3f5fc15c1e688baeb74d2e08cab18ab406"},
    "ahw": {"sha256": "024664adeb892809d646a3efd043625b46b5bfa3e6189b3500b2d0d59dfab06c"},
    "aup": {"sha256": "2c55bc3050caa996758869126ad10cf42e1441212111db034b3a45189c18b6fc"},
    "awb": {"sha256": "d74a950c9739a65f7bfc4dfa6187f2730fa03de5b8eb3f2da97a51b74df64d3c"},
    "axb": {"sha256": "dd65c3d2907d1ee52f86e44f578319159e60f4bf722a9142be01161d84e330ff"},
    "bdl": {"sha256": "26b91aaf48b2799b2956792b4632c2f926cd0542f402b5452d5adecb60942904"},
    "clb": {"sha256": "3f16dc3f3b97955ea22623efb33b444341013fc660677b2e170efdcc959fa7c6"},
    "eey": {"sha256": "8a0ee4e5acbd4b2f61a4fb947c1730ab3adcc9dc50b195981d99391d29928e8a"},
    "fem": {"sha256": "3fcff629412b57233589cdb058f730594a62c4f3a75c20de14afe06621ef45e2"},
    "gka": {"sha256": "dc82e7967cbd5eddbed33074b0699128dbd4482b41711916d58103707e38c67f"},
    "jmk": {"sha256": "3a37c0e1dfc91e734fdbc88b562d9e2ebca621772402cdc693bbc9b09b211d73"},
    "ksp": {"sha256": "8029cafce8296f9bed3022c44ef1e7953332b6bf6943c14b929f468122532717"},
    "ljm": {"sha256": "b23993765cbf2b9e7bbc3c85b6c56eaf292ac81ee4bb887b638a24d104f921a0"},
    "lnh": {"sha256": "4faf34d71aa7112813252fb20c5433e2fdd9a9de55a00701ffcbf05f24a5991a"},
    "rms": {"sha256": "c6dc11235629c58441c071a7ba8a2d067903dfefbaabc4056d87da35b72ecda4"},
    "rxr": {"sha256": "1fa4271c393e5998d200e56c102ff46fcfea169aaa2148ad9e9469616fbfdd9b"},
    "slp": {"sha256": "54345ed55e45c23d419e9a823eef427f1cc93c83a710735ec667d068c916abf1"},
    "slt": {"sha256": "7c173297916acf3cc7fcab2713be4c60b27312316765a90934651d367226b4ea"},
}
VOICES = tuple(CHECKSUMS)
DEFAULT_VOICES = ("slt", "bdl")
CORPUS_FOLDER = "cmu_arctic"


def main(argv: list[str] | None = None) -> None:
    parser = _download.make_parser(__doc__, single_archive=False)
    parser.add_argument("--voices", nargs="+", default=list(DEFAULT_VOICES), choices=VOICES + ("all",),
                        metavar="VOICE", help=f"voices to fetch, or 'all' (default: slt bdl); choices: {' '.join(VOICES)}")
    parser.add_argument("--base-url", default=BASE_URL, help=f"folder URL holding the archives (default: {BASE_URL})")
    args = parser.parse_args(argv)
    voices = list(VOICES) if "all" in args.voices else list(dict.fromkeys(args.voices))
    corpus_dir = args.dest / CORPUS_FOLDER
    for voice in voices:
        archive = f"cmu_us_{voice}_arctic.tar.bz2"
        _download.fetch_and_extract(
            f"{args.base_url.rstrip('/')}/{archive}", args.dest / archive, corpus_dir,
            corpus_dir / f"cmu_us_{voice}_arctic" / "etc" / "txt.done.data",
            expected=CHECKSUMS[voice], no_verify=args.no_verify, remove_archive=args.remove_archive)
    print(f'done. Load it with:\n  from ttslab.data.readers import read_arctic\n  corpus = read_arctic("{corpus_dir}")')


if __name__ == "__main__":
    sys.exit(_download.run(main))
