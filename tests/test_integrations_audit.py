"""Found in an audit of the integrations and the team remote: tied weights of a module materialized
from the meta device, lazy modules, modules with non-tensor state, loading hooks that refuse; a
remote whose `mvcdb` schema belongs to another application; which parameters a lazy clone has not
fetched; root refs on the remote."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import remote_helpers
from cli_helpers import run
from click.testing import CliRunner

import mvcdb
from mvcdb.cli.app import cli
from mvcdb.remote.chunks import unfetched_params

# the PostgreSQL fixtures (a session server, a fresh database per test, PGPASSWORD)
pg_server = remote_helpers.pg_server
pg_url = remote_helpers.pg_url
pg_env = remote_helpers.pg_env


# -- PyTorch -----------------------------------------------------------------------------------------


def _torch() -> Any:
    return pytest.importorskip("torch")


def _tied_model() -> Any:
    """An embedding shared with the output layer, and a buffer registered twice."""
    torch = _torch()
    nn = torch.nn

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.emb.weight
            self.register_buffer("scale", torch.full((2,), 3.0))
            self.inner = nn.Module()
            self.inner.register_buffer("scale", self.scale)

    return Tied()


def test_restore_into_a_meta_module_keeps_tied_weights_tied(tmp_path: Path) -> None:
    torch = _torch()
    model = _tied_model()
    with mvcdb.open(tmp_path / "t.db") as db:
        v = db.record("tied", model=model)
        with torch.device("meta"):
            fresh = _tied_model()
        db.restore(v, into=fresh)
    # one parameter, as in the recorded model: training must update both uses together
    assert fresh.out.weight is fresh.emb.weight
    assert fresh.inner.scale is fresh.scale
    assert len(list(fresh.parameters())) == 1
    assert fresh.emb.weight.device.type == "cpu" and fresh.emb.weight.requires_grad
    assert torch.equal(fresh.emb.weight, model.emb.weight)


def test_a_version_with_different_values_for_tied_weights_is_refused(tmp_path: Path) -> None:
    torch = _torch()
    nn = torch.nn

    def layers() -> Any:
        return nn.ModuleDict({"emb": nn.Embedding(10, 4), "out": nn.Linear(4, 10, bias=False)})

    with mvcdb.open(tmp_path / "t.db") as db:
        v = db.record("untied", model=layers())
        target = layers()
        target["out"].weight = target["emb"].weight
        before = target["emb"].weight.detach().clone()
        with pytest.raises(
            mvcdb.MvcdbError, match=r"'emb.weight' and 'out.weight' are one tensor in the model"
        ):
            db.restore(v, into=target)
        assert torch.equal(target["emb"].weight, before)  # nothing loaded


def test_lazy_modules_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    torch = _torch()
    nn = torch.nn
    with mvcdb.open(tmp_path / "t.db") as db:
        with pytest.raises(mvcdb.MvcdbError, match=r"'weight' is not initialized yet .*forward pass"):
            db.record("lazy", model=nn.LazyLinear(2))
        v = db.record("plain", model=nn.Sequential(nn.Linear(3, 2)))
        with pytest.raises(mvcdb.MvcdbError, match=r"'0.weight' is not initialized yet"):
            db.restore(v, into=nn.Sequential(nn.LazyLinear(2)))
        assert db.versions(model="lazy") == []


def test_a_module_with_non_tensor_state_or_a_refusing_hook_gets_an_mvcdb_error(tmp_path: Path) -> None:
    torch = _torch()
    nn = torch.nn

    class WithExtra(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(2, 2)

        def get_extra_state(self) -> dict[str, int]:
            return {"k": 1}

        def set_extra_state(self, state: object) -> None:
            pass

    class Refusing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(2, 2)
            self.register_load_state_dict_pre_hook(self._refuse)

        @staticmethod
        def _refuse(*args: object) -> None:
            raise RuntimeError("this module only loads\nits own checkpoints")

    with mvcdb.open(tmp_path / "t.db") as db:
        v = db.record("plain", model=WithExtra().l)
        plain = db.record("plain2", params={"l.weight": np.zeros((2, 2), "f4"), "l.bias": np.zeros(2, "f4")})
        target = WithExtra()
        before = target.l.weight.detach().clone()
        with pytest.raises(mvcdb.MvcdbError, match=r"entry '_extra_state' is a dict, not a tensor"):
            db.restore(plain, into=target)
        assert torch.equal(target.l.weight, before)
        db.restore(plain, ["l.weight"], into=target)  # a partial load leaves the extra state alone
        assert not target.l.weight.any()
        with pytest.raises(
            mvcdb.MvcdbError, match=r"^cannot load into the nn.Module Refusing: .*only loads its own"
        ):
            db.restore(plain, into=Refusing())
        assert v.id


# -- the team remote ---------------------------------------------------------------------------------


def _foreign(pg_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA mvcdb")
        conn.execute(sql)


def _foreign_rows(pg_url: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return list(conn.execute("SELECT * FROM mvcdb.versions").fetchall())


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        (
            "CREATE TABLE mvcdb.versions (id int); INSERT INTO mvcdb.versions VALUES (7)",
            "no table schema_version",
        ),
        (
            "CREATE TABLE mvcdb.schema_version (version int, name text);"
            " INSERT INTO mvcdb.schema_version VALUES (1, 'x');"
            " CREATE TABLE mvcdb.versions (id int); INSERT INTO mvcdb.versions VALUES (7)",
            "table schema_version has no column applied_at",
        ),
    ],
)
def test_a_remote_whose_mvcdb_schema_is_someone_elses_is_refused(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str], sql: str, why: str
) -> None:
    _foreign(pg_url, sql)
    url = remote_helpers.without_password(pg_url)
    with mvcdb.open(tmp_path / "a.db") as db:
        db.record("m", params={"w": np.arange(3.0)})
    runner = CliRunner()
    for args in (
        ["--db", str(tmp_path / "a.db"), "push", url],
        ["--db", str(tmp_path / "a.db"), "pull", url],
    ):
        res = runner.invoke(cli, args)
        assert res.exit_code == 1, res.output
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        assert (
            f'its schema "mvcdb" was not created by mvcdb (it{"s" if "column" in why else " has"} '
            in res.stderr
        )
        assert why in res.stderr
    res = runner.invoke(cli, ["clone", url, str(tmp_path / "c.db")])
    assert res.exit_code == 1 and "was not created by mvcdb" in res.stderr
    assert not (tmp_path / "c.db").exists()  # refused before any file is made
    assert _foreign_rows(pg_url) == [(7,)]  # the other application's data is untouched


@pytest.mark.slow  # PostgreSQL round trips: ~0.3-0.5 s
def test_an_empty_mvcdb_schema_made_by_an_administrator_is_filled_in(tmp_path: Path, pg_url: str) -> None:
    _foreign(pg_url, "SELECT 1")
    with mvcdb.open(tmp_path / "a.db") as db:
        v = db.record("m", params={"w": np.arange(3.0)})
        assert db.push(pg_url).versions == 1
    mvcdb.clone(pg_url, tmp_path / "c.db")
    with mvcdb.open(tmp_path / "c.db") as c:
        assert c.restore(v)["w"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.slow  # PostgreSQL round trips: ~0.3-0.5 s
def test_unfetched_params_names_what_a_lazy_clone_would_download(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    rng = np.random.default_rng(3)
    with mvcdb.open(tmp_path / "a.db") as db:
        v1 = db.record("m", params={"big": rng.standard_normal(5000), "tiny": np.ones(2)})
        v2 = db.record("m", params={"big": rng.standard_normal(5000), "tiny": np.ones(2)}, parent=v1)
        db.push(pg_url)
        assert unfetched_params(db.conn, v1.id) == frozenset()
    mvcdb.clone(pg_url, tmp_path / "lazy.db", lazy=True)
    shown = run(tmp_path / "lazy.db", ["show", v1.id])  # browsing downloads no parameters
    assert shown.exit_code == 0, shown.stderr
    assert "norm '-': 2 tensor(s) not read" in shown.stdout
    with mvcdb.open(tmp_path / "lazy.db") as lazy:
        assert unfetched_params(lazy.conn, v1.id) == {"big", "tiny"}
        lazy.fetch([v2.id])
        assert unfetched_params(lazy.conn, v2.id) == frozenset()
        assert unfetched_params(lazy.conn, v1.id) == {"big"}  # "tiny" has the same bytes as v2's


def test_pulling_the_parent_of_a_remote_root_says_it_is_a_root(tmp_path: Path, pg_url: str) -> None:
    with mvcdb.open(tmp_path / "a.db") as db:
        v = db.record("m", params={"w": np.arange(3.0)})
        db.tag(v, "production")
        db.push(pg_url)
    with mvcdb.open(tmp_path / "b.db") as b, pytest.raises(mvcdb.MvcdbError) as err:
        b.pull(pg_url, ["production^"])
    assert str(err.value) == "'production^': production is a root version: it has no parent on the remote"


@pytest.mark.slow  # PostgreSQL round trips: ~0.3-0.5 s
def test_a_clone_copies_a_tags_history_without_inventing_a_move(tmp_path: Path, pg_url: str) -> None:
    with mvcdb.open(tmp_path / "a.db") as db:
        v1 = db.record("m", params={"w": np.arange(3.0)})
        v2 = db.record("m", params={"w": np.arange(4.0)}, parent=v1)
        v3 = db.record("m", params={"w": np.arange(5.0)}, parent=v2)
        for v in (v1, v2, v3):  # the remote tag moves three times
            db.tag(v, "production")
            db.push(pg_url)
    mvcdb.clone(pg_url, tmp_path / "c.db")
    with mvcdb.open(tmp_path / "c.db") as c:
        moves = [(m.from_id, m.to_id) for m in c.tag_history("production")]
    assert moves == [(None, v1.id), (v1.id, v2.id), (v2.id, v3.id)]  # the remote's, nothing added


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_nested_tensors_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    torch = _torch()
    ragged = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    with mvcdb.open(tmp_path / "t.db") as db:
        with pytest.raises(
            mvcdb.MvcdbError, match=r"'x' is a nested \(ragged\) tensor; record its components"
        ):
            db.record("n", model={"x": ragged})
        v = db.record("n", model={"x": torch.ones(2)})
        with pytest.raises(mvcdb.MvcdbError, match=r"'x' is a nested \(ragged\) tensor$"):
            db.restore(v, into={"x": ragged})


@pytest.mark.slow  # PostgreSQL round trips: ~0.3-0.5 s
def test_a_role_without_rights_gets_one_line_from_clone_and_pull(
    tmp_path: Path, pg_url: str, pg_server: remote_helpers.PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import psycopg

    with mvcdb.open(tmp_path / "a.db") as db:
        db.record("m", params={"w": np.arange(3.0)})
        db.push(pg_url)
    role = f"weak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'weak-pw'")
    try:
        monkeypatch.setenv("PGPASSWORD", "weak-pw")
        parts = urlsplit(pg_url)
        url = urlunsplit((parts.scheme, f"{role}@{parts.netloc.rpartition('@')[2]}", parts.path, "", ""))
        runner = CliRunner()
        for args in (["clone", url, str(tmp_path / "c.db")], ["--db", str(tmp_path / "a.db"), "pull", url]):
            res = runner.invoke(cli, args)
            assert res.exit_code == 1, res.output
            assert res.stderr == f"mvcdb: error: remote {url}: permission denied for schema mvcdb\n"
        assert not (tmp_path / "c.db").exists()
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("url", ["postgresql:///?service=models", "postgresql:///?dbname=models"])
def test_a_service_url_as_readme_shows_it_can_be_added(tmp_path: Path, url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", str(tmp_path / "a.db"), "init"]).exit_code == 0
    res = runner.invoke(cli, ["--db", str(tmp_path / "a.db"), "remote", "add", "origin", url])
    assert res.exit_code == 0, res.output
    with mvcdb.open(tmp_path / "a.db") as db:
        assert [r.url for r in db.remotes()] == [url]


@pytest.mark.slow  # PostgreSQL round trips: ~0.3 s
def test_a_service_file_names_the_remote(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = urlsplit(pg_url)
    (tmp_path / "services.conf").write_text(
        f"[models]\nhost={parts.hostname}\nport={parts.port}\ndbname={parts.path.lstrip('/')}\n"
        f"user={parts.username}\npassword={parts.password}\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "services.conf"))
    with mvcdb.open(tmp_path / "a.db") as db:
        v = db.record("m", params={"w": np.arange(3.0)})
        db.add_remote("origin", "postgresql:///?service=models")
        assert db.push().versions == 1
    mvcdb.clone("postgresql:///?service=models", tmp_path / "c.db")
    with mvcdb.open(tmp_path / "c.db") as c:
        assert c.restore(v)["w"].tolist() == [0.0, 1.0, 2.0]
