"""The cache of generated modules and the files modelc writes: nothing half-written is ever used
or left behind.

- a truncated or corrupted cache entry is detected (checksum) and rebuilt;
- processes compiling the same model at once all succeed and leave one valid entry;
- a cache folder that cannot be written falls back to a private temporary folder, with one warning;
- `modelc compile -o` writes the whole file or nothing, even when the disk fails mid-write;
- what runs is the verified text: no bytecode file beside an entry is read or written, and a
  folder (or entry) that another user owns or may write is not used;
- a compile interrupted while it imports SymPy or lark leaves the process able to compile.
"""
from __future__ import annotations

import errno
import importlib.util
import marshal
import os
import re
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from modelc import compile_model, compile_source
from modelc.cli import main
from modelc.errors import BackendUnavailableError
from modelc.runtime import cache, compiler

ROOT = Path(__file__).resolve().parent.parent
MODEL = """\
m:
  base: OperatorTemplate
  description: "Decay towards a drive (a test model)."
  equations: "x' = -x/tau + drive"
  variables: {x: output(1.0), tau: 2.0, drive: input(0.5)}
"""


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder, and no module remembered in memory."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MODELC_CACHE_DIR", str(folder))
    monkeypatch.setattr(compiler, "_loaded", {})
    monkeypatch.setattr(cache, "_warned_fallback", False)
    return folder


def model_file(folder: Path, tau: float = 2.0) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.yaml"
    path.write_text(MODEL.replace("tau: 2.0", f"tau: {tau}"), encoding="utf-8")
    return f"{path}:m"


def final_x(module) -> float:
    result = module.run({"m/x": np.ones(2)}, {}, {}, 0.1, 10)
    return float(result["final"]["m/x"][0])


def expected_x(tau: float = 2.0) -> float:
    x = 1.0
    for _ in range(10):
        x += 0.1 * (-x / tau + 0.5)
    return x


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.py"))


# --- corrupted entries ---------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "flip_a_digit", "drop_checksum", "empty", "binary_garbage"])
def test_damaged_entry_is_detected_and_rebuilt(fresh_cache, tmp_path, monkeypatch, damage):
    template = model_file(tmp_path / "src")
    module = compile_model(template)
    entry = Path(module.__file__)
    assert entry.parent == fresh_cache and cache.verified_source(entry) is not None
    good = entry.read_text(encoding="utf-8")
    if damage == "truncate":
        entry.write_text(good[: len(good) // 2], encoding="utf-8")
    elif damage == "flip_a_digit":  # same length, one character changed: only the checksum can tell
        at = good.index("0.5")
        entry.write_text(good[:at] + "9.5" + good[at + 3:], encoding="utf-8")
    elif damage == "drop_checksum":
        entry.write_text(good.rsplit(cache.CHECKSUM_PREFIX, 1)[0], encoding="utf-8")
    elif damage == "empty":
        entry.write_text("", encoding="utf-8")
    else:
        entry.write_bytes(b"\xff\xfe\x00garbage" * 100)
    assert cache.verified_source(entry) is None

    monkeypatch.setattr(compiler, "_loaded", {})  # as in a new process
    rebuilt = compile_model(template)
    assert Path(rebuilt.__file__) == entry
    assert entry.read_text(encoding="utf-8") == good
    assert final_x(rebuilt) == pytest.approx(expected_x(), abs=1e-12)
    assert entries(fresh_cache) == [entry]


def test_checksum_covers_the_whole_entry(tmp_path):
    source = "import numpy as np\nX = 1\n"
    stored = cache.with_checksum(source)
    assert stored.startswith(source) and stored.splitlines()[-1].startswith(cache.CHECKSUM_PREFIX)
    for k in range(len(source)):  # any one character changed anywhere is caught
        changed = stored[:k] + ("Y" if stored[k] != "Y" else "Z") + stored[k + 1:]
        path = tmp_path / "entry.py"
        path.write_text(changed, encoding="utf-8")
        assert cache.verified_source(path) is None, k


def test_a_source_without_a_final_newline_verifies(tmp_path):
    path = tmp_path / "entry.py"
    path.write_text(cache.with_checksum("X = 1"), encoding="utf-8")
    assert cache.verified_source(path) == "X = 1\n"


# --- source without loading ----------------------------------------------------------------

def test_compile_source_is_the_cache_entry_and_never_imports_it(fresh_cache, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError, installed or not
    template = model_file(tmp_path / "src")
    source = compile_source(template, backend="cupy")
    assert "import cupy as cp" in source and compiler._loaded == {}
    [entry] = entries(fresh_cache)
    assert entry.read_text(encoding="utf-8") == source and cache.verified_source(entry) is not None
    assert compile_source(template, backend="cupy") == source  # a hit reads the entry back as stored
    with pytest.raises(BackendUnavailableError, match=re.escape("pip install modelc[cupy]")) as caught:
        compile_model(template, backend="cupy")  # loading it is what needs CuPy
    assert caught.value.code == "MC204" and "compile_source" in caught.value.hint
    assert compiler._loaded == {}


# --- concurrent compiles -------------------------------------------------------------------

WORKER = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[2])
while not go.exists():  # start together
    time.sleep(0.001)
import numpy as np
from modelc import compile_model
module = compile_model(sys.argv[1])
print(module.run({"m/x": np.ones(2)}, {}, {}, 0.1, 10)["final"]["m/x"][0], module.__file__)
"""


def test_processes_compiling_the_same_model_at_once_all_succeed(fresh_cache, tmp_path):
    template = model_file(tmp_path / "src", tau=3.0)  # a model no other test compiled
    go = tmp_path / "go"
    env = {**os.environ, "MODELC_CACHE_DIR": str(fresh_cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, template, str(go)], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    go.touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    values = [float(out.split()[0]) for out, _ in outputs]
    assert values == [pytest.approx(expected_x(3.0), abs=1e-12)] * len(workers)
    files = {out.split()[1] for out, _ in outputs}
    assert len(files) == 1
    (entry,) = entries(fresh_cache)
    assert str(entry) in files and cache.verified_source(entry) is not None
    leftovers = [p.name for p in fresh_cache.iterdir() if p != entry]
    assert not leftovers, f"temporary files left in the cache: {leftovers}"


def test_atomic_writes_never_show_a_partial_file(tmp_path):
    """Writers racing on one path; a reader only ever sees one whole version."""
    path = tmp_path / "entry.py"
    versions = [cache.with_checksum(f"X = {k}\n" + "# padding\n" * 2000) for k in range(8)]
    cache.write_atomic(path, versions[0])
    stop = threading.Event()
    seen, errors = set(), []

    def write(text):
        for _ in range(20):
            cache.write_atomic(path, text)

    def read():
        while not stop.is_set():
            text = path.read_text(encoding="utf-8")
            if text not in versions:
                errors.append(len(text))
            seen.add(text)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(v,)) for v in versions]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert not errors, f"partial files seen: sizes {errors[:5]}"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.py"]


# --- a cache folder that cannot be written ----------------------------------------------

def _blocked_by_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path / "a_file" / "cache"


def _read_only_folder(tmp_path: Path) -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("unwritable", [_blocked_by_a_file, _read_only_folder])
def test_unwritable_cache_falls_back_to_a_private_temp_folder_with_one_warning(fresh_cache, tmp_path, monkeypatch,
                                                                               unwritable):
    folder = unwritable(tmp_path)
    monkeypatch.setenv("MODELC_CACHE_DIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the fallback goes here
    (tmp_path / "tmp").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = compile_model(model_file(tmp_path / "a", tau=4.0))
        second = compile_model(model_file(tmp_path / "b", tau=5.0))
    notes = [w for w in caught if "not writable" in str(w.message)]
    assert len(notes) == 1, [str(w.message) for w in caught]
    assert issubclass(notes[0].category, RuntimeWarning) and str(folder) in str(notes[0].message)
    for module, tau in ((first, 4.0), (second, 5.0)):
        assert Path(module.__file__).parent.parent == tmp_path / "tmp"
        assert final_x(module) == pytest.approx(expected_x(tau), abs=1e-12)
    assert Path(first.__file__).parent == Path(second.__file__).parent
    if folder.parent.is_dir():
        folder.chmod(0o700)
        assert not list(folder.iterdir())


def test_a_cache_write_that_fails_falls_back_with_one_warning(tmp_path, monkeypatch):
    """A full disk (or a folder made read-only after the check): cache.store writes elsewhere."""
    folder, fallback = tmp_path / "cache", tmp_path / "tmp"
    folder.mkdir()
    fallback.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fallback))
    monkeypatch.setattr(cache, "_warned_fallback", False)
    real_write = cache.write_atomic

    def full_disk(path, text, mode=None):
        if path.parent == folder:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, text, mode)

    monkeypatch.setattr(cache, "write_atomic", full_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stored = [cache.store(folder / f"{k}.py", cache.with_checksum(f"X = {k}\n")) for k in range(3)]
    assert len([w for w in caught if "No space left on device" in str(w.message)]) == 1
    for k, path in enumerate(stored):
        assert path.parent.parent == fallback and path.name == f"{k}.py"
        assert cache.verified_source(path) == f"X = {k}\n"
    assert not list(folder.iterdir())


def test_fallback_folder_is_private(tmp_path, monkeypatch):
    """Code is loaded from the fallback folder: one others can write, or a planted link, is not used."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    shared = tmp_path / f"modelc-cache-{uid}"
    assert cache.private_temp_dir() == shared  # created private (0o700) and used
    assert shared.stat().st_mode & 0o077 == 0
    shared.chmod(0o777)  # now writable by everyone: not trusted any more
    other = cache.private_temp_dir()
    assert other != shared and other.is_dir() and other.stat().st_mode & 0o077 == 0
    shared.chmod(0o700)
    shared.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    shared.symlink_to(elsewhere)  # a planted symbolic link is not followed
    assert cache.private_temp_dir() not in (shared, elsewhere)


# --- modelc compile -o: all or nothing -------------------------------------------------------

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"


class _FailingFile:
    """A file that takes half of what is written, then reports a full disk."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False

    def __getattr__(self, name):
        return getattr(self.handle, name)


@pytest.mark.parametrize("existing", [None, "# the previous version\n"])
def test_compile_output_is_never_half_written(tmp_path, monkeypatch, capsys, existing):
    target = tmp_path / "out" / "tanh_net.py"
    if existing is not None:
        target.parent.mkdir()
        target.write_text(existing)
    compile_model(SEED)  # in the cache already: only the output file is written below
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FailingFile(real_fdopen(*a, **k)))
    status = main(["compile", SEED, "-o", str(target)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert status == 2
    assert f"error: cannot write {target}: No space left on device [MC207]" in err
    assert "Traceback" not in err
    if existing is None:
        assert not target.exists()
    else:
        assert target.read_text() == existing
    assert [p.name for p in target.parent.iterdir()] == ([] if existing is None else [target.name])


def test_compile_output_survives_an_interrupt_mid_write(tmp_path, monkeypatch, capsys):
    target = tmp_path / "tanh_net.py"
    target.write_text("# the previous version\n")
    compile_model(SEED)  # in the cache already: only the output file is written below

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)  # written, fsynced, then Ctrl-C before the rename
    status = main(["compile", SEED, "-o", str(target)])
    monkeypatch.undo()
    assert status == 130
    assert target.read_text() == "# the previous version\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_compile_output_is_whole_and_importable(tmp_path):
    target = tmp_path / "tanh_net.py"
    assert main(["compile", SEED, "-o", str(target)]) == 0
    text = target.read_text()
    assert text.rstrip().splitlines()[-1].startswith(cache.CHECKSUM_PREFIX)
    assert cache.verified_source(target) is not None
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary one


# --- what runs is what was verified --------------------------------------------------------

def _bytecode_header(source: Path) -> bytes:
    """The 16-byte header the import system checks a .pyc by: magic, flags, the source's mtime and size."""
    info = source.stat()
    return (importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little") +
            (int(info.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (info.st_size & 0xFFFFFFFF).to_bytes(4, "little"))


@pytest.mark.parametrize("bytecode", ["planted", "truncated"])
def test_a_bytecode_file_next_to_an_entry_is_never_run(fresh_cache, tmp_path, monkeypatch, bytecode):
    """The checksum covers the .py; a .pyc beside it (planted, or cut short) must play no part."""
    template = model_file(tmp_path / "src")
    entry = Path(compile_model(template).__file__)
    pyc = Path(importlib.util.cache_from_source(str(entry)))
    pyc.parent.mkdir(exist_ok=True)
    planted = marshal.dumps(compile("PLANTED = True\n", str(entry), "exec"))
    pyc.write_bytes(_bytecode_header(entry) + (planted if bytecode == "planted" else b""))

    monkeypatch.setattr(compiler, "_loaded", {})  # as in a new process
    module = compile_model(template)
    assert not hasattr(module, "PLANTED") and module.__file__ == str(entry)
    assert final_x(module) == pytest.approx(expected_x(), abs=1e-12)


def test_loading_an_entry_writes_no_bytecode(fresh_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    module = compile_model(model_file(tmp_path / "src", tau=6.0))
    assert Path(module.__file__).parent == fresh_cache
    assert [p.name for p in fresh_cache.iterdir()] == [Path(module.__file__).name]


# --- a cache folder others could plant code in ------------------------------------------------

def _planted_entry(fresh_cache: Path, tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """A model compiled once, then its entry replaced by another module with a valid checksum."""
    template = model_file(tmp_path / "src", tau=7.0)
    entry = Path(compile_model(template).__file__)
    entry.write_text(cache.with_checksum("PLANTED = True\n" + cache.verified_source(entry)), encoding="utf-8")
    assert cache.verified_source(entry) is not None
    monkeypatch.setattr(compiler, "_loaded", {})  # as in a new process
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the fallback goes here
    (tmp_path / "tmp").mkdir()
    return template, entry


def _compile_with_warnings(template: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = compile_model(template)
    return module, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_cache_folder_others_may_write_is_not_used(fresh_cache, tmp_path, monkeypatch):
    template, entry = _planted_entry(fresh_cache, tmp_path, monkeypatch)
    fresh_cache.chmod(0o777)  # a shared, world-writable MODELC_CACHE_DIR
    module, notes = _compile_with_warnings(template)
    assert not hasattr(module, "PLANTED") and final_x(module) == pytest.approx(expected_x(7.0), abs=1e-12)
    assert Path(module.__file__).parent.parent == tmp_path / "tmp"
    assert notes == [f"modelc cache folder {fresh_cache} is writable by other users (mode 777); code loaded from "
                     f"it could be theirs (chmod go-w it to use it); using {Path(module.__file__).parent} instead"]
    fresh_cache.chmod(0o700)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give files away")
def test_a_cache_folder_or_entry_of_another_user_is_not_used(fresh_cache, tmp_path, monkeypatch):
    template, entry = _planted_entry(fresh_cache, tmp_path, monkeypatch)
    os.chown(fresh_cache, 4321, -1)
    module, notes = _compile_with_warnings(template)
    assert not hasattr(module, "PLANTED") and Path(module.__file__).parent.parent == tmp_path / "tmp"
    assert len(notes) == 1 and "belongs to another user (uid 4321)" in notes[0]

    os.chown(fresh_cache, os.getuid(), -1)  # our folder again, but the planted entry is someone else's
    os.chown(entry, 4321, -1)
    monkeypatch.setattr(compiler, "_loaded", {})
    module, notes = _compile_with_warnings(template)
    assert not hasattr(module, "PLANTED") and Path(module.__file__) == entry and not notes
    assert entry.stat().st_uid == os.getuid()  # rebuilt in place


# --- an interrupted first compile ------------------------------------------------------------

INTERRUPTED_IMPORT = """
import sys
import numpy as np
from modelc import compile_model

class CtrlC:
    '''Ctrl-C the moment `name` is first imported: whatever imports it is left half done.'''
    def __init__(self, name):
        self.name, self.fired = name, False

    def find_spec(self, name, path=None, target=None):
        if name == self.name and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC(sys.argv[2]))
try:
    compile_model(sys.argv[1])
except KeyboardInterrupt:
    pass
else:
    sys.exit(sys.argv[2] + " was never imported")
module = compile_model(sys.argv[1])
print(module.run({"m/x": np.ones(2)}, {}, {}, 0.1, 10)["final"]["m/x"][0])
"""


# Interrupted there, a later compile failed with RecursionError and with a false MC101 (SymPy's
# printing helpers and its logic package imported half-way).
@pytest.mark.parametrize("module", ["sympy.core._print_helpers", "sympy.logic"])
def test_a_compile_interrupted_while_importing_leaves_the_process_able_to_compile(fresh_cache, tmp_path, module):
    template = model_file(tmp_path / "src", tau=8.0)
    env = {**os.environ, "MODELC_CACHE_DIR": str(fresh_cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT, template, module], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout) == pytest.approx(expected_x(8.0), abs=1e-12)
