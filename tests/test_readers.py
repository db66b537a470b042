"""Real-corpus readers (on small fixture trees in each corpus' published layout) and the
download helpers of data_scripts/ (safe extraction, checksums, resume), all offline."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ttslab.data.corpus import Corpus, CorpusNotFoundError
from ttslab.data.readers import (
    LIBRITTS_SUBSETS, assign_split, read_arctic, read_corpus, read_libritts, read_ljspeech, read_vctk,
)

REPO = Path(__file__).resolve().parents[1]
DATA_SCRIPTS = REPO / "data_scripts"
DURATION_S = 0.2


def write_tone(path: Path, sample_rate: int, fmt: str = "WAV") -> None:
    """0.2 s of a 220 Hz sine at ``sample_rate``, as 16-bit WAV or FLAC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(DURATION_S * sample_rate)) / sample_rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 220 * t), sample_rate, format=fmt, subtype="PCM_16")


# --------------------------------------------------------------------------- fixture trees

LJ_ROWS = [
    ("LJ001-0001", "Printing, in the only sense with which we are at present concerned,",
     "Printing, in the only sense with which we are at present concerned,"),
    ("LJ001-0002", 'in being "comparatively" modern.', 'in being "comparatively" modern.'),
    ("LJ001-0010", "in 1453 it was", "in fourteen fifty-three it was"),
]


@pytest.fixture
def ljspeech(tmp_path) -> Path:
    """tmp/LJSpeech-1.1/{metadata.csv, wavs/*.wav} at 22,050 Hz."""
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("".join(f"{i}|{raw}|{norm}\n" for i, raw, norm in LJ_ROWS), encoding="utf-8")
    for utt_id, _, _ in LJ_ROWS:
        write_tone(root / "wavs" / f"{utt_id}.wav", 22050)
    return root


@pytest.fixture
def vctk(tmp_path) -> Path:
    """VCTK 0.92: p225 (3 utterances, both mics), p226 (2 + a transcript without audio), p315 (audio only)."""
    root = tmp_path / "VCTK-Corpus-0.92"
    texts = {"p225": ["Please call Stella.", "Ask her to bring these things", "Six spoons of fresh snow peas."],
             "p226": ["Please call Stella.", "We also need a small plastic snake.", "This one has no audio."]}
    for speaker, lines in texts.items():
        for n, line in enumerate(lines, start=1):
            txt = root / "txt" / speaker / f"{speaker}_{n:03d}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(line + "\n", encoding="utf-8")
    audio = {"p225": [1, 2, 3], "p226": [1, 2], "p315": [1, 2]}
    for speaker, numbers in audio.items():
        for n in numbers:
            write_tone(root / "wav48_silence_trimmed" / speaker / f"{speaker}_{n:03d}_mic1.flac", 48000, "FLAC")
    for n in (1, 2, 3):
        write_tone(root / "wav48_silence_trimmed" / "p225" / f"p225_{n:03d}_mic2.flac", 48000, "FLAC")
    return root


@pytest.fixture
def libritts(tmp_path) -> Path:
    """LibriTTS/{dev-clean, train-clean-100}/<speaker>/<chapter>/*.wav + .normalized.txt at 24 kHz."""
    root = tmp_path / "LibriTTS"
    utterances = {
        "dev-clean": [("84", "121123", "84_121123_000007_000000", "Go, do you hear?"),
                      ("84", "121123", "84_121123_000010_000000", "But in less than five minutes, the staircase groaned."),
                      ("1272", "128104", "1272_128104_000001_000000", "He hoped there would be stew for dinner.")],
        "train-clean-100": [("19", "198", "19_198_000000_000000", "Northanger Abbey."),
                            ("19", "198", "19_198_000001_000000", None)],  # a WAV without transcript
    }
    for subset, rows in utterances.items():
        for speaker, chapter, utt_id, text in rows:
            folder = root / subset / speaker / chapter
            write_tone(folder / f"{utt_id}.wav", 24000)
            if text is not None:
                (folder / f"{utt_id}.normalized.txt").write_text(text, encoding="utf-8")
                (folder / f"{utt_id}.original.txt").write_text(text, encoding="utf-8")
    return root


ARCTIC_PROMPTS = {
    "arctic_a0001": "Author of the danger trail, Philip Steels, etc.",
    "arctic_a0002": "Not at this particular case, Tom, apologized Whittemore.",
    "arctic_b0001": "He thought it was time to present the present.",
}


def make_arctic_voice(folder: Path, voice: str, missing_wav: str | None = None) -> Path:
    voice_dir = folder / f"cmu_us_{voice}_arctic"
    (voice_dir / "etc").mkdir(parents=True)
    lines = [f'( {pid} "{text}" )' for pid, text in ARCTIC_PROMPTS.items()]
    (voice_dir / "etc" / "txt.done.data").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for pid in ARCTIC_PROMPTS:
        if pid != missing_wav:
            write_tone(voice_dir / "wav" / f"{pid}.wav", 16000)
    return voice_dir


@pytest.fixture
def arctic(tmp_path) -> Path:
    """cmu_arctic/{cmu_us_slt_arctic, cmu_us_bdl_arctic (one WAV missing)} at 16 kHz."""
    root = tmp_path / "cmu_arctic"
    make_arctic_voice(root, "slt")
    make_arctic_voice(root, "bdl", missing_wav="arctic_a0002")
    return root


# --------------------------------------------------------------------------- readers

def test_ljspeech_reads_metadata_and_headers(ljspeech):
    corpus = read_ljspeech(ljspeech)
    assert isinstance(corpus, Corpus) and corpus.name == "ljspeech"
    assert [u.id for u in corpus] == ["LJ001-0001", "LJ001-0002", "LJ001-0010"]
    assert corpus.speakers == ["LJ"]
    assert corpus["LJ001-0010"].text == "in fourteen fifty-three it was"  # the normalized column
    assert corpus["LJ001-0002"].text == 'in being "comparatively" modern.'  # quotes kept (QUOTE_NONE)
    for u in corpus:
        assert (u.sample_rate, u.num_samples, u.language, u.segments) == (22050, 4410, "en", None)
        assert u.duration == pytest.approx(DURATION_S)
    assert corpus.info["sample_rate"] == 22050
    assert corpus.info["skipped_no_audio"] == corpus.info["skipped_no_text"] == 0


def test_reader_accepts_the_parent_folder(ljspeech):
    assert [u.id for u in read_ljspeech(ljspeech.parent)] == [u.id for u in read_ljspeech(ljspeech)]


def test_probe_audio_off_skips_headers(ljspeech):
    corpus = read_ljspeech(ljspeech, probe_audio=False)
    assert all(u.num_samples is None and u.sample_rate == 22050 for u in corpus)


def test_split_rule_is_deterministic_and_about_five_percent(ljspeech, arctic):
    first, second = read_ljspeech(ljspeech), read_ljspeech(ljspeech)
    assert [(u.id, u.split) for u in first] == [(u.id, u.split) for u in second]
    assert all(u.split == assign_split(u.id) for u in first)
    keys = [f"utt{i:05d}" for i in range(20000)]
    share = sum(assign_split(k) == "test" for k in keys) / len(keys)
    assert 0.04 < share < 0.06
    # ARCTIC: the split follows the prompt, so every voice holds out the same sentences
    corpus = read_arctic(arctic)
    by_prompt = {}
    for u in corpus:
        by_prompt.setdefault(u.id.split("_", 1)[1], set()).add(u.split)
    assert all(len(splits) == 1 for splits in by_prompt.values())


def test_load_audio_and_resampling(ljspeech, vctk):
    utt = read_ljspeech(ljspeech)[0]
    audio = utt.load_audio()
    assert audio.dtype == np.float32 and audio.shape == (4410,)
    vctk_utt = read_vctk(vctk)[0]
    assert vctk_utt.sample_rate == 48000 and vctk_utt.load_audio().shape == (9600,)
    resampled = vctk_utt.load_audio(sample_rate=22050)
    assert resampled.dtype == np.float32 and abs(len(resampled) - 4410) <= 1


def test_vctk_092_skips_and_counts(vctk):
    corpus = read_vctk(vctk)
    assert corpus.speakers == ["p225", "p226"]  # p315 has no transcripts
    assert len(corpus) == 5
    assert corpus["p225_001"].text == "Please call Stella."
    assert corpus["p225_001"].wav_path.name == "p225_001_mic1.flac"
    assert corpus.info["layout"] == "0.92" and corpus.info["sample_rate"] == 48000
    assert corpus.info["skipped_no_text"] == 2  # p315_001, p315_002
    assert corpus.info["skipped_no_audio"] == 1  # p226_003
    assert corpus.info["skipped_ids"] == ["p226_003", "p315_001", "p315_002"]


def test_vctk_second_microphone(vctk):
    corpus = read_vctk(vctk, mic="mic2")
    assert [u.id for u in corpus] == ["p225_001", "p225_002", "p225_003"]
    assert corpus[0].wav_path.name == "p225_001_mic2.flac"
    with pytest.raises(ValueError, match="mic"):
        read_vctk(vctk, mic="mic3")


def test_vctk_080_layout(tmp_path):
    root = tmp_path / "VCTK-Corpus"
    for n in (1, 2, 10):
        (root / "txt" / "p225").mkdir(parents=True, exist_ok=True)
        (root / "txt" / "p225" / f"p225_{n:03d}.txt").write_text(f"Sentence {n}.\n")
        write_tone(root / "wav48" / "p225" / f"p225_{n:03d}.wav", 48000)
    corpus = read_vctk(tmp_path)  # the parent folder is accepted too
    assert corpus.info["layout"] == "0.80"
    assert [u.id for u in corpus] == ["p225_001", "p225_002", "p225_010"]  # natural order


def test_libritts_subsets_and_skips(libritts):
    corpus = read_libritts(libritts)
    assert corpus.info["subsets"] == ["dev-clean", "train-clean-100"]
    assert corpus.speakers == ["19", "84", "1272"]  # natural order of speaker ids
    assert len(corpus) == 4 and corpus.info["skipped_no_text"] == 1
    assert corpus["84_121123_000007_000000"].text == "Go, do you hear?"
    assert {u.sample_rate for u in corpus} == {24000}
    dev = read_libritts(libritts.parent, subsets="dev-clean")
    assert len(dev) == 3 and dev.info["skipped_no_text"] == 0
    with pytest.raises(ValueError, match="unknown LibriTTS subset"):
        read_libritts(libritts, subsets=["dev-dirty"])
    with pytest.raises(CorpusNotFoundError, match="--subsets test-clean"):
        read_libritts(libritts, subsets=["test-clean"])
    assert "test-clean" in LIBRITTS_SUBSETS


def test_arctic_several_voices_and_single_voice(arctic):
    corpus = read_arctic(arctic)
    assert corpus.speakers == ["bdl", "slt"]
    assert len(corpus) == 5 and corpus.info["skipped_no_audio"] == 1
    assert corpus.info["skipped_ids"] == ["bdl_arctic_a0002"]
    utt = corpus["slt_arctic_a0001"]
    assert utt.text == "Author of the danger trail, Philip Steels, etc."
    assert utt.sample_rate == 16000 and utt.num_samples == 3200
    single = read_arctic(arctic / "cmu_us_slt_arctic")
    assert single.speakers == ["slt"] and len(single) == 3


def test_read_corpus_dispatches(ljspeech, arctic):
    assert len(read_corpus("ljspeech", ljspeech)) == 3
    assert len(read_corpus("CMU_ARCTIC", arctic)) == 5
    with pytest.raises(ValueError, match="known corpora.*arctic.*ljspeech"):
        read_corpus("timit", ljspeech)


@pytest.mark.parametrize("reader, script", [
    (read_ljspeech, "fetch_ljspeech.py"), (read_vctk, "fetch_vctk.py"),
    (read_libritts, "fetch_libritts.py"), (read_arctic, "fetch_arctic.py"),
])
def test_missing_corpus_names_path_and_fix(tmp_path, reader, script):
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusNotFoundError) as err:
        reader(missing)
    assert str(missing) in str(err.value) and f"python data_scripts/{script} --dest" in str(err.value)
    with pytest.raises(CorpusNotFoundError, match=script):  # the folder exists but is empty
        reader(tmp_path)


def test_missing_key_files(ljspeech, vctk):
    (ljspeech / "metadata.csv").unlink()
    with pytest.raises(CorpusNotFoundError, match="metadata.csv"):
        read_ljspeech(ljspeech)
    import shutil
    shutil.rmtree(vctk / "wav48_silence_trimmed")
    with pytest.raises(CorpusNotFoundError, match="wav48_silence_trimmed.*fetch_vctk.py"):
        read_vctk(vctk)


def test_malformed_metadata_names_file_and_line(ljspeech, arctic):
    meta = ljspeech / "metadata.csv"
    lines = meta.read_text().splitlines()
    lines[1] = "LJ001-0002|only two fields"
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"metadata\.csv:2: expected 3"):
        read_ljspeech(ljspeech)
    prompts = arctic / "cmu_us_slt_arctic" / "etc" / "txt.done.data"
    prompts.write_text(prompts.read_text() + "arctic_a0003 no parentheses\n")
    with pytest.raises(ValueError, match=r"txt\.done\.data:4:"):
        read_arctic(arctic)


def test_non_utf8_metadata_names_file_line_byte_and_fix(ljspeech):
    """A Latin-1 metadata.csv used to raise a bare UnicodeDecodeError with no file or line (issue 8 §7)."""
    from ttslab.data.readers import TextEncodingError

    meta = ljspeech / "metadata.csv"
    lines = meta.read_text(encoding="utf-8").splitlines()
    lines[2] = "LJ001-0010|in 1453 it was caf\u00e9|in fourteen fifty-three it was caf\u00e9"
    meta.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    expected = (r"metadata\.csv:3: byte 0xE9 at column 30 is not UTF-8 "
                r"\(it reads as Windows-1252/Latin-1: 'LJ001-0010\|in 1453 it was caf\u00e9.*"
                r"iconv -f CP1252 -t UTF-8 metadata\.csv")
    with pytest.raises(TextEncodingError, match=expected) as e:
        read_ljspeech(ljspeech)
    assert isinstance(e.value, ValueError) and e.value.__cause__ is None and str(meta) in str(e.value)
    meta.write_bytes(meta.read_bytes().decode("cp1252").encode("utf-16"))  # Windows "Unicode"
    with pytest.raises(TextEncodingError, match=r"metadata\.csv:1: byte 0xFF .*UTF-16 byte-order mark.*-f UTF-16"):
        read_ljspeech(ljspeech)


def test_byte_order_mark_is_accepted_in_every_text_file(ljspeech, vctk, libritts, arctic):
    """A UTF-8 BOM used to glue itself to the first id ("no utterance ... run fetch_ljspeech.py")."""
    bom = b"\xef\xbb\xbf"

    def add_bom(path):
        path.write_bytes(bom + path.read_bytes())

    plain = read_ljspeech(ljspeech)
    add_bom(ljspeech / "metadata.csv")
    with_bom = read_ljspeech(ljspeech)
    assert [(u.id, u.text) for u in with_bom] == [(u.id, u.text) for u in plain]
    assert with_bom.info["skipped_no_audio"] == with_bom.info["skipped_no_text"] == 0

    add_bom(vctk / "txt" / "p225" / "p225_001.txt")
    assert read_vctk(vctk)["p225_001"].text == "Please call Stella."
    text = next(libritts.glob("dev-clean/84/121123/84_121123_000007_000000.normalized.txt"))
    add_bom(text)
    assert read_libritts(libritts)["84_121123_000007_000000"].text == "Go, do you hear?"
    add_bom(arctic / "cmu_us_slt_arctic" / "etc" / "txt.done.data")
    assert read_arctic(arctic)["slt_arctic_a0001"].text == ARCTIC_PROMPTS["arctic_a0001"]


def test_non_utf8_transcripts_are_refused_not_garbled(vctk, libritts, arctic):
    """VCTK/LibriTTS/ARCTIC text used to be decoded with errors="replace" (U+FFFD in the text)."""
    from ttslab.data.readers import TextEncodingError

    (vctk / "txt" / "p225" / "p225_002.txt").write_bytes(b"Ask her to bring these caf\xe9 things\n")
    with pytest.raises(TextEncodingError, match=r"p225_002\.txt:1: byte 0xE9 at column 27"):
        read_vctk(vctk)
    text = next(libritts.glob("dev-clean/84/121123/84_121123_000010_000000.normalized.txt"))
    text.write_bytes(b"But in less than five minutes\x97 the staircase groaned.")
    with pytest.raises(TextEncodingError, match=r"000010_000000\.normalized\.txt:1: byte 0x97"):
        read_libritts(libritts)
    prompts = arctic / "cmu_us_bdl_arctic" / "etc" / "txt.done.data"
    prompts.write_bytes(prompts.read_bytes() + b'( arctic_b0002 "na\xefve" )\n')
    with pytest.raises(TextEncodingError, match=r"txt\.done\.data:4: byte 0xEF"):
        read_arctic(arctic)


def test_readers_doctests():
    import doctest

    import ttslab.data.readers

    result = doctest.testmod(ttslab.data.readers, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- data_scripts/_download.py

@pytest.fixture(scope="module")
def dl():
    spec = importlib.util.spec_from_file_location("ttslab_data_scripts_download", DATA_SCRIPTS / "_download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quiet(_message: str) -> None:
    pass


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("bad_name", ["../evil.txt", "corpus/../../evil.txt", "/tmp/ttslab_evil_abs.txt"])
def test_safe_extract_refuses_escaping_tar_members(dl, tmp_path, bad_name):
    archive = make_tar(tmp_path / "bad.tar.gz", {"corpus/ok.txt": b"ok", bad_name: b"evil"})
    dest = tmp_path / "dest"
    with pytest.raises(dl.UnsafeArchiveError, match="refusing"):
        dl.safe_extract(archive, dest, report=quiet)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/ttslab_evil_abs.txt").exists()
    assert list(dest.iterdir()) == []  # nothing, not even the good member or the staging folder


def test_safe_extract_refuses_links_and_zip_slip(dl, tmp_path):
    link_archive = tmp_path / "link.tar"
    with tarfile.open(link_archive, "w") as tar:
        info = tarfile.TarInfo("corpus/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(dl.UnsafeArchiveError, match="link"):
        dl.safe_extract(link_archive, tmp_path / "d1", report=quiet)
    zip_archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(zip_archive, "w") as zf:
        zf.writestr("corpus/ok.txt", "ok")
        zf.writestr("../evil.txt", "evil")
    with pytest.raises(dl.UnsafeArchiveError):
        dl.safe_extract(zip_archive, tmp_path / "d2", report=quiet)
    assert not (tmp_path / "evil.txt").exists() and list((tmp_path / "d2").iterdir()) == []


def test_safe_extract_merges_identical_files_and_refuses_changes(dl, tmp_path):
    dest = tmp_path / "dest"
    first = make_tar(tmp_path / "a.tar.bz2", {"LibriTTS/SPEAKERS.txt": b"same", "LibriTTS/dev-clean/x.txt": b"x"}, "w:bz2")
    second = make_tar(tmp_path / "b.tar.gz", {"LibriTTS/SPEAKERS.txt": b"same", "LibriTTS/test-clean/y.txt": b"y"})
    assert dl.safe_extract(first, dest, report=quiet) == [dest.resolve() / "LibriTTS"]
    dl.safe_extract(second, dest, report=quiet)
    assert (dest / "LibriTTS/dev-clean/x.txt").read_bytes() == b"x"
    assert (dest / "LibriTTS/test-clean/y.txt").read_bytes() == b"y"
    changed = make_tar(tmp_path / "c.tar.gz", {"LibriTTS/SPEAKERS.txt": b"different"})
    with pytest.raises(FileExistsError, match="SPEAKERS.txt"):
        dl.safe_extract(changed, dest, report=quiet)
    assert (dest / "LibriTTS/SPEAKERS.txt").read_bytes() == b"same"


def test_checksum_mismatch_raises_and_discards(dl, tmp_path):
    source = tmp_path / "src" / "archive.bin"
    source.parent.mkdir()
    source.write_bytes(b"corpus bytes" * 1000)
    target = tmp_path / "dl" / "archive.bin"
    with pytest.raises(dl.ChecksumMismatchError, match="sha256"):
        dl.download(source.as_uri(), target, expected={"sha256": "0" * 64}, report=quiet)
    assert not target.exists() and not target.with_name("archive.bin.part").exists()
    good = {"sha256": hashlib.sha256(source.read_bytes()).hexdigest(), "md5": hashlib.md5(source.read_bytes()).hexdigest()}
    path, digests = dl.download(source.as_uri(), target, expected=good, report=quiet)
    assert path == target and digests == good and target.read_bytes() == source.read_bytes()


def test_parse_checksum_and_unverified_archives(dl, tmp_path):
    assert dl.parse_checksum("SHA256:" + "A" * 64) == {"sha256": "a" * 64}
    with pytest.raises(ValueError):
        dl.parse_checksum("sha256:1234")
    archive = tmp_path / "x.tar"
    digests = {"sha256": "ab" * 32, "md5": "cd" * 16}
    with pytest.raises(dl.UnverifiedArchiveError, match="ab" * 32):
        dl.require_verified(archive, digests, None, no_verify=False, report=quiet)
    dl.require_verified(archive, digests, None, no_verify=True, report=quiet)  # allowed, with a warning


def test_resume_from_a_partial_file_url_download(dl, tmp_path):
    payload = bytes(range(256)) * 400
    source = tmp_path / "served" / "corpus.tar.gz"
    source.parent.mkdir()
    source.write_bytes(payload)
    target = tmp_path / "dl" / "corpus.tar.gz"
    target.parent.mkdir()
    part = target.with_name("corpus.tar.gz.part")
    part.write_bytes(payload[:30000])
    messages = []
    dl.download(source.as_uri(), target, expected={"sha256": hashlib.sha256(payload).hexdigest()},
                chunk_size=4096, report=messages.append)
    assert any("resuming corpus.tar.gz at 30,000 bytes" in m for m in messages)
    assert target.read_bytes() == payload and not part.exists()


class _RangeServer:
    """A local HTTP server for one payload: honours Range (206), or ignores it, or breaks off."""

    def __init__(self, payload: bytes):
        self.payload, self.mode, self.ranges_seen = payload, "range", []
        server_state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data, start = server_state.payload, 0
                header = self.headers.get("Range")
                server_state.ranges_seen.append(header)
                if header and server_state.mode == "range":
                    start = int(header.split("=")[1].rstrip("-"))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server_state.mode == "break":
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/corpus.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    server = _RangeServer(bytes(range(251)) * 800)
    yield server
    server.close()


def test_http_download_breaks_off_then_resumes(dl, tmp_path, http_server):
    payload = http_server.payload
    expected = {"sha256": hashlib.sha256(payload).hexdigest()}
    target = tmp_path / "corpus.tar.gz"
    part = target.with_name("corpus.tar.gz.part")
    http_server.mode = "break"
    with pytest.raises(dl.DownloadError, match="(?i)run the script again to resume"):
        dl.download(http_server.url, target, expected=expected, timeout=5, report=quiet)
    kept = part.stat().st_size
    assert 0 < kept < len(payload) and not target.exists()
    http_server.mode = "range"
    dl.download(http_server.url, target, expected=expected, timeout=5, report=quiet)
    assert http_server.ranges_seen[-1] == f"bytes={kept}-"
    assert target.read_bytes() == payload


def test_http_server_ignoring_range_restarts_cleanly(dl, tmp_path, http_server):
    payload = http_server.payload
    target = tmp_path / "corpus.tar.gz"
    target.with_name("corpus.tar.gz.part").write_bytes(b"stale bytes from elsewhere")
    http_server.mode = "ignore"
    dl.download(http_server.url, target, expected={"md5": hashlib.md5(payload).hexdigest()}, timeout=5, report=quiet)
    assert target.read_bytes() == payload


def test_http_complete_part_file_gets_416_and_is_accepted(dl, tmp_path, http_server):
    payload = http_server.payload
    target = tmp_path / "corpus.tar.gz"
    target.with_name("corpus.tar.gz.part").write_bytes(payload)
    dl.download(http_server.url, target, expected={"sha256": hashlib.sha256(payload).hexdigest()}, timeout=5, report=quiet)
    assert target.read_bytes() == payload


def test_fetch_script_end_to_end_with_a_local_mirror(tmp_path, monkeypatch, capsys):
    """fetch_ljspeech.py on a file:// copy of a tiny LJSpeech archive, then read_ljspeech."""
    staging = tmp_path / "build" / "LJSpeech-1.1"
    (staging / "wavs").mkdir(parents=True)
    (staging / "metadata.csv").write_text("LJ001-0001|Hello 1.|Hello one.\n")
    write_tone(staging / "wavs" / "LJ001-0001.wav", 22050)
    archive = tmp_path / "mirror" / "LJSpeech-1.1.tar.bz2"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(staging, arcname="LJSpeech-1.1")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.syspath_prepend(str(DATA_SCRIPTS))
    sys.modules.pop("_download", None)
    import fetch_ljspeech

    dest = tmp_path / "corpora"
    # no pinned checksum for a mirror copy: refused unless --no-verify or --checksum
    monkeypatch.setattr(fetch_ljspeech, "CHECKSUM", None)
    assert fetch_ljspeech._download.run(fetch_ljspeech.main, ["--dest", str(dest), "--url", archive.as_uri()]) == 1
    assert sha in capsys.readouterr().err and not (dest / "LJSpeech-1.1").exists()
    assert fetch_ljspeech._download.run(
        fetch_ljspeech.main, ["--dest", str(dest), "--url", archive.as_uri(), "--checksum", f"sha256:{sha}"]) == 0
    corpus = read_ljspeech(dest)
    assert [u.text for u in corpus] == ["Hello one."] and corpus[0].sample_rate == 22050
    # a second run finds the corpus and does nothing
    assert fetch_ljspeech._download.run(fetch_ljspeech.main, ["--dest", str(dest), "--url", "file:///nonexistent"]) == 0


def test_arctic_fetch_script_with_a_local_mirror(tmp_path, monkeypatch):
    """fetch_arctic.py: one archive per voice from --base-url, extracted side by side."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for voice in ("slt", "bdl"):
        voice_dir = make_arctic_voice(tmp_path / "build", voice)
        with tarfile.open(mirror / f"cmu_us_{voice}_arctic.tar.bz2", "w:bz2") as tar:
            tar.add(voice_dir, arcname=voice_dir.name)
    monkeypatch.syspath_prepend(str(DATA_SCRIPTS))
    sys.modules.pop("_download", None)
    import fetch_arctic

    pins = {v: {"sha256": hashlib.sha256((mirror / f"cmu_us_{v}_arctic.tar.bz2").read_bytes()).hexdigest()}
            for v in ("slt", "bdl")}
    monkeypatch.setattr(fetch_arctic, "CHECKSUMS", pins)
    dest = tmp_path / "corpora"
    argv = ["--dest", str(dest), "--base-url", mirror.as_uri(), "--voices", "slt", "bdl", "--remove-archive"]
    assert fetch_arctic._download.run(fetch_arctic.main, argv) == 0
    assert not list(dest.glob("*.tar.bz2"))  # --remove-archive
    corpus = read_arctic(dest / "cmu_arctic")
    assert corpus.speakers == ["bdl", "slt"] and len(corpus) == 6


def test_fetch_scripts_pin_well_formed_checksums(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA_SCRIPTS))
    sys.modules.pop("_download", None)
    import fetch_arctic
    import fetch_libritts
    import fetch_ljspeech
    import fetch_vctk

    pinned = [fetch_ljspeech.CHECKSUM, fetch_vctk.CHECKSUM, *fetch_libritts.CHECKSUMS.values(),
              *fetch_arctic.CHECKSUMS.values()]
    for checksum in pinned:
        for algorithm, digest in (checksum or {}).items():
            assert fetch_ljspeech._download.parse_checksum(f"{algorithm}:{digest}") == {algorithm: digest}
    assert set(fetch_libritts.SUBSETS) == set(LIBRITTS_SUBSETS)
