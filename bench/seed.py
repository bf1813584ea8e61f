#!/usr/bin/env python3
"""Fill a migrated Valet store with a large, realistic data set, for scale benchmarks.

Usage:
    bench/seed.py --database-url sqlite:///path/valet.db [--users N] [--clients N]
                  [--refresh-tokens N] [--apis N] [--revoked-access-tokens N] [--seed S]
    bench/seed.py --database-url postgres://postgres@127.0.0.1:5432/dbname ...
    bench/seed.py --database-url URL --explain     # query plans only, seeds nothing

The store must exist and be migrated (`valet migrate` or a first `valet serve`), and no
`valet serve` should write to it while this runs. Defaults: 1,000,000 users, 100,000
clients, 1,000,000 refresh tokens (in ~476,000 families, one grant each), 20 APIs, plus what
such a history leaves behind: ~450,000 consents, ~7,000 live sessions, ~300 used codes from
the last hour and 10,000 revoked access tokens. Full size takes 1-2 minutes per store on 2
cores and ~1.5 GB of memory (plus SQLite's 1 GiB page cache); the SQLite file is ~1.2 GB.

Python 3.11 standard library only. The rows are generated in Python (one generator for both
engines, so both stores hold the same shape of data), then loaded one table per transaction:
SQLite through the sqlite3 module (synchronous=OFF, journal mode left as Valet set it),
PostgreSQL through `psql` (`COPY ... FROM STDIN`), since psycopg may be absent. For a table of
50,000 rows or more the secondary indexes (not those of PRIMARY KEY/UNIQUE) are dropped and
built again from their own CREATE statements after the load, in the same transaction
(--no-rebuild-indexes turns that off). ANALYZE runs at the end.

What the rows look like (see migrations/*/0001_initial.sql, src/store/records.rs, sql.rs):
  * times are integer unix seconds; lists are compact JSON text (serde_json::to_string);
    scopes are space-delimited and sorted (ScopeSet is a BTreeSet).
  * user ids, grant ids and refresh family ids are UUID v4 text (as GrantId::new and
    `valet user create` make them).
  * client ids are 24 ASCII letters and digits, as new_client_id() makes them: here
    "seed" + 7-digit index + 13 random ones (a CLI-made random id cannot realistically
    collide, and Valet would refuse the insert if it did).
  * secret/token/code/session hashes are 32 random bytes (HMAC-SHA-256 under a key derived
    from the server secret in real life: nobody will present the plaintexts).
  * every user has the same Argon2id PHC hash (SEED_PASSWORD_HASH, made once by
    `valet user create` with the default parameters m=19456,t=2,p=1) of the password
    SEED_PASSWORD ("seed-password"), so a benchmark can sign in as any seeded user with a
    client it creates itself (the seeded clients' secrets are unknown).
  * names: usernames "seed-user0000001", e-mails "seed-user0000001@example.com", client
    names "seed-client-0000001", APIs "https://seed-api-01.example.com" (scopes read:data,
    write:data). Clients: 60% confidential web apps, 15% SPAs (with an allowed origin), 10%
    native apps (both public), 5% first-party password-grant apps, 10% client_credentials.
  * refresh families: a random user, a client skewed towards a few big ones, 1-6 tokens
    (all but the last rotated, parent_hash chained), started up to 85 days ago and so still
    live (family_expires_at in the future); 3% revoked with their grant. Code-flow families
    carry code_hash, session_hash and auth_time, password-grant ones do not.
  * the janitor of a `valet serve` started on the store deletes only the few seeded codes,
    sessions and revoked access tokens as they age out.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

SEED_PASSWORD = "seed-password"
# `printf 'seed-password\n' | valet user create --username x --password-stdin` with the default
# [password_hash] settings; Valet verifies it (and never needs to upgrade it) under defaults.
SEED_PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$60zk/mEoDQoOupPVe1ICAg$73WUU/5vTzyVS0BjI4wrSG8Vzhvo0ttB2LGWGTYiL4s"

DAY = 86_400
REFRESH_IDLE_TTL = 14 * DAY  # tokens.refresh_idle_ttl default
REFRESH_ABSOLUTE_TTL = 90 * DAY  # tokens.refresh_absolute_ttl default
SESSION_TTL = DAY  # login.session_ttl default
CODE_TTL = 60  # tokens.code_ttl default
CODE_MEMORY = 3600  # janitor keeps used codes this long after they expire
ACCESS_TOKEN_TTL = 3600  # tokens.access_token_ttl default

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

OIDC = "email offline_access openid profile"
# Client kinds, by client index modulo 20: 60% web apps (confidential, code flow), 15% SPAs
# and 10% native apps (public, code flow + PKCE), 5% first-party apps using the password
# grant, 10% machine clients (client_credentials only, no refresh tokens).
KIND_BY_MOD = ["web"] * 12 + ["spa"] * 3 + ["native"] * 2 + ["password"] + ["machine"] * 2
# Family sizes (tokens per refresh family: 1 live + k-1 rotated), mean 2.1.
FAMILY_SIZES = [1, 2, 3, 4, 6]
FAMILY_WEIGHTS = [45, 25, 15, 10, 5]


def log(msg: str) -> None:
    print(msg, flush=True)


def die(msg: str) -> None:
    print(f"seed.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------------- engines


class Sqlite:
    name = "sqlite"

    def __init__(self, url: str):
        rest = url.split(":", 1)[1]
        if rest.startswith("//"):
            rest = rest[2:]
        path = urllib.parse.unquote(rest.split("?", 1)[0])
        if not path or path == ":memory:":
            die("an in-memory SQLite database cannot be seeded")
        if not Path(path).is_file():
            die(f"{path}: no such database; run `valet migrate` first")
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("PRAGMA cache_size = -1048576")  # 1 GiB: the indexes stay in memory
        self.conn.execute("PRAGMA temp_store = MEMORY")

    def query(self, sql: str) -> list[tuple]:
        return self.conn.execute(sql).fetchall()

    def execute(self, sql: str) -> None:
        self.conn.executescript(sql)

    def secondary_indexes(self, table: str) -> list[tuple[str, str]]:
        """(name, CREATE statement) of the indexes a migration made; not the automatic ones
        of PRIMARY KEY and UNIQUE constraints (their sql is NULL)."""
        return self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL ORDER BY name", (table,)).fetchall()

    def load(self, table: str, columns: list[str], rows: list[tuple], rebuild: bool) -> None:
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        indexes = self.secondary_indexes(table) if rebuild else []
        # One transaction: the indexes are dropped, the rows inserted and the indexes built
        # again from their own CREATE statements, or nothing happens at all.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for name, _ in indexes:
                self.conn.execute(f'DROP INDEX "{name}"')
            self.conn.executemany(sql, rows)
            for _, create in indexes:
                self.conn.execute(create)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def analyze(self) -> None:
        self.conn.execute("ANALYZE")
        # Fold the WAL back into the file, so its size is the store's size.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # EXPLAIN QUERY PLAN text, one line per node, indented like the sqlite3 shell does.
    def plan(self, sql: str) -> list[str]:
        rows = self.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        depth: dict[int, int] = {0: -1}
        out = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            out.append("  " * depth[node] + detail)
        return out

    def literal(self, kind: str, value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, bytes):
            return f"X'{value.hex()}'"
        return "'" + str(value).replace("'", "''") + "'"


class Postgres:
    name = "postgres"

    def __init__(self, url: str):
        if not shutil.which("psql"):
            die("psql is required for a PostgreSQL store")
        self.url = url
        self.env = dict(os.environ)
        # Bulk-load settings for the seeding sessions only.
        self.env["PGOPTIONS"] = (
            "-c synchronous_commit=off -c maintenance_work_mem=512MB -c client_min_messages=warning"
        )

    def _psql(self, *args: str) -> list[str]:
        return ["psql", self.url, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args]

    def query(self, sql: str) -> list[tuple]:
        out = subprocess.run(
            self._psql("-A", "-t", "-F", "\x1f", "-c", sql),
            env=self.env, check=True, capture_output=True, text=True,
        ).stdout
        return [tuple(line.split("\x1f")) for line in out.splitlines() if line != ""]

    def execute(self, sql: str) -> None:
        subprocess.run(self._psql("-c", sql), env=self.env, check=True)

    @staticmethod
    def _field(v) -> str:
        if v is None:
            return "\\N"
        t = type(v)
        if t is str:
            return v
        if t is bytes:
            return "\\\\x" + v.hex()
        if t is bool:
            return "t" if v else "f"
        return str(v)

    def secondary_indexes(self, table: str) -> list[tuple[str, str]]:
        """(name, CREATE statement) of the table's indexes that back no constraint."""
        return self.query(
            "SELECT indexname, indexdef FROM pg_indexes "
            f"WHERE schemaname = current_schema() AND tablename = '{table}' AND indexname NOT IN "
            f"(SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass) "
            "ORDER BY indexname")

    def load(self, table: str, columns: list[str], rows: list[tuple], rebuild: bool) -> None:
        indexes = self.secondary_indexes(table) if rebuild else []
        # One psql script, one transaction: drop the indexes, COPY (its data inline, ended by
        # \.), build the indexes again from their own definitions, commit. ON_ERROR_STOP
        # ends psql at the first error, and the open transaction goes with the connection.
        head = ["BEGIN;"] + [f'DROP INDEX "{name}";' for name, _ in indexes]
        head.append(f"COPY {table} ({', '.join(columns)}) FROM STDIN;")
        tail = ["\\."] + [f"{create};" for _, create in indexes] + ["COMMIT;"]
        proc = subprocess.Popen(self._psql("-f", "-"), env=self.env, stdin=subprocess.PIPE)
        field = self._field
        try:
            proc.stdin.write(("\n".join(head) + "\n").encode())
            chunk = []
            for row in rows:
                chunk.append("\t".join([field(v) for v in row]))
                if len(chunk) >= 20_000:
                    proc.stdin.write(("\n".join(chunk) + "\n").encode())
                    chunk.clear()
            if chunk:
                proc.stdin.write(("\n".join(chunk) + "\n").encode())
            proc.stdin.write(("\n".join(tail) + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        if proc.wait() != 0:
            die(f"COPY into {table} failed")

    def analyze(self) -> None:
        self.execute("ANALYZE")

    def leading_columns(self) -> dict[str, str]:
        """Index name -> its first column."""
        rows = self.query(
            "SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()")
        return dict(rows)

    def plan(self, sql: str, seqscan: bool = True) -> list[str]:
        if seqscan:
            return [r[0] for r in self.query("EXPLAIN " + sql)]
        saved = self.env
        self.env = dict(saved, PGOPTIONS=saved["PGOPTIONS"] + " -c enable_seqscan=off -c jit=off")
        try:
            return [r[0] for r in self.query("EXPLAIN " + sql)]
        finally:
            self.env = saved

    def literal(self, kind: str, value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, bytes):
            return f"'\\x{value.hex()}'::bytea"
        return "'" + str(value).replace("'", "''") + "'"


def open_store(url: str):
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return Sqlite(url)
    if scheme in ("postgres", "postgresql"):
        return Postgres(url)
    die(f"unsupported database URL `{url}` (sqlite://FILE or postgres://...)")


# ------------------------------------------------------------------------------ generation


class Gen:
    """Everything the seed writes, built in memory first (a few hundred MB at full size)."""

    def __init__(self, args, now: int):
        self.rng = random.Random(args.seed)
        self.now = now
        self.args = args

    def uuid4(self) -> str:
        n = self.rng.getrandbits(128)
        n = (n & ~(0xF000 << 64)) | (4 << 76)
        n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
        h = "%032x" % n
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def hash32(self) -> bytes:
        return self.rng.randbytes(32)

    def b64(self, n: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(n)).rstrip(b"=").decode()

    # -- APIs
    def apis(self) -> list[tuple]:
        rows = []
        for i in range(1, self.args.apis + 1):
            rows.append((
                f"https://seed-api-{i:02d}.example.com",
                f"seed-api-{i:02d}",
                '["read:data","write:data"]',
                self.now - 730 * DAY,
            ))
        self.api_ids = [r[0] for r in rows]
        return rows

    # -- clients
    CLIENT_COLUMNS = [
        "client_id", "client_name", "secret_hash", "token_endpoint_auth_method", "grant_types",
        "redirect_uris", "scope", "audiences", "allowed_origins", "first_party",
        "post_logout_redirect_uris", "backchannel_logout_uri", "require_par", "jwks", "jwks_uri",
        "registered_via", "registration_token_hash", "revision", "created_at", "updated_at",
    ]

    def clients(self) -> list[tuple]:
        rng, now = self.rng, self.now
        rows = []
        # (client_id, kind, audience or '', scope templates for grants, redirect_uri)
        self.refresh_clients = []
        for i in range(1, self.args.clients + 1):
            kind = KIND_BY_MOD[i % 20]
            cid = f"seed{i:07d}" + "".join(rng.choices(ALNUM, k=13))
            name = f"seed-client-{i:07d}"
            api = self.api_ids[rng.randrange(len(self.api_ids))] if self.api_ids else None
            # One in five code-flow clients is a plain OpenID Connect login, with no API.
            oidc_only = kind in ("web", "spa", "native") and i % 5 == 0 or api is None
            if oidc_only and kind != "machine":
                audience, scope = "", OIDC
                grant_scopes = [OIDC, "offline_access openid profile"]
            elif kind == "machine":
                audience, scope, grant_scopes = api, "read:data write:data", []
            else:
                audience, scope = api, "email offline_access openid profile read:data write:data"
                grant_scopes = [
                    "offline_access openid profile read:data",
                    "email offline_access openid profile read:data write:data",
                    "offline_access read:data",
                ]
            secret_hash = None if kind in ("spa", "native") else self.hash32()
            method = "none" if secret_hash is None else "client_secret_basic"
            origins, post_logout, backchannel, redirect = "[]", "[]", None, None
            if kind == "web":
                grants = '["authorization_code","refresh_token"]'
                base = f"https://seed-app-{i:07d}.example.com"
                redirect = f"{base}/callback"
                if i % 2 == 0:
                    post_logout = f'["{base}/"]'
                if i % 40 == 1:
                    backchannel = f"{base}/backchannel-logout"
            elif kind == "spa":
                grants = '["authorization_code","refresh_token"]'
                base = f"https://seed-spa-{i:07d}.example.com"
                redirect = f"{base}/callback"
                origins = f'["{base}"]'
                post_logout = f'["{base}/"]'
            elif kind == "native":
                grants = '["authorization_code","refresh_token"]'
                redirect = f"com.example.seed{i:07d}:/callback"
            elif kind == "password":
                grants = '["password","refresh_token"]'
            else:
                grants = '["client_credentials"]'
            redirects = f'["{redirect}"]' if redirect else "[]"
            audiences = f'["{audience}"]' if audience else "[]"
            # Older than any refresh family (those start at most 85 days ago).
            created = now - rng.randint(90 * DAY, 730 * DAY)
            rows.append((
                cid, name, secret_hash, method, grants, redirects, scope, audiences, origins,
                kind == "password", post_logout, backchannel, False, None, None, None, None, 0,
                created, created,
            ))
            if kind != "machine":
                self.refresh_clients.append((cid, kind, audience, grant_scopes, redirect))
        return rows

    # -- users
    USER_COLUMNS = [
        "id", "username", "email", "name", "profile", "password_hash", "disabled",
        "created_at", "updated_at",
    ]

    def users(self, password_hash: str) -> list[tuple]:
        rng, now = self.rng, self.now
        rows = []
        self.user_ids = []
        self.user_created = []
        for i in range(1, self.args.users + 1):
            uid = self.uuid4()
            handle = f"seed-user{i:07d}"
            r = i % 10
            if r < 4:
                profile = "{}"
            elif r < 8:
                profile = '{"email_verified":true}'
            else:
                profile = (
                    '{"email_verified":true,"given_name":"Seed","family_name":"User%07d",'
                    '"locale":"en-US"}' % i
                )
            created = now - rng.randint(DAY, 730 * DAY)
            rows.append((
                uid, handle, f"{handle}@example.com", f"Seed User {i:07d}", profile, password_hash,
                i % 200 == 0,  # 0.5% disabled
                created, created,
            ))
            self.user_ids.append(uid)
            self.user_created.append(created)
        return rows

    # -- grants, refresh families, and what they leave behind
    GRANT_COLUMNS = [
        "grant_id", "client_id", "user_id", "created_at", "expires_at", "revoked_at",
        "userinfo_claims",
    ]
    REFRESH_COLUMNS = [
        "token_hash", "family_id", "parent_hash", "grant_id", "client_id", "user_id", "scope",
        "audience", "code_hash", "issued_at", "expires_at", "family_expires_at", "session_hash",
        "auth_time", "rotated_at", "revoked_at",
    ]
    SESSION_COLUMNS = ["id_hash", "user_id", "auth_time", "created_at", "expires_at", "ended_at"]
    CODE_COLUMNS = [
        "code_hash", "grant_id", "client_id", "user_id", "session_hash", "redirect_uri",
        "code_challenge", "code_challenge_method", "scope", "audience", "nonce", "auth_time",
        "created_at", "expires_at", "consumed_at", "claims",
    ]
    CONSENT_COLUMNS = ["user_id", "client_id", "audience", "scope", "created_at", "updated_at"]
    REVOKED_COLUMNS = ["jti", "client_id", "revoked_at", "expires_at"]

    def families(self):
        rng, now = self.rng, self.now
        grants, tokens, sessions, codes = [], [], [], []
        consents: dict[tuple, list] = {}
        live = []  # (grant_id, client_id) of families not revoked and used in the last hour
        users, clients = self.user_ids, self.refresh_clients
        if not users or not clients:
            return grants, tokens, sessions, codes, [], []
        n_users, n_clients = len(users), len(clients)
        target = self.args.refresh_tokens
        sizes = rng.choices(FAMILY_SIZES, FAMILY_WEIGHTS, k=max(1, target))
        made = 0
        for k in sizes:
            if made >= target:
                break
            k = min(k, target - made)
            made += k
            u = rng.randrange(n_users)
            user = users[u]
            # Skewed: a few clients hold many families, most hold a few.
            cid, kind, audience, scopes, redirect = clients[int(n_clients * rng.random() ** 2)]
            scope = scopes[rng.randrange(len(scopes))]
            grant_id, family_id = self.uuid4(), self.uuid4()
            # The first token, at most 85 days ago (the family lives 90) and after the user
            # was created (at least a day ago).
            t0 = now - rng.randint(120, min(85 * DAY, now - self.user_created[u] - 3600))
            family_expires = t0 + REFRESH_ABSOLUTE_TTL
            if kind == "password":
                code_hash = session_hash = None
                auth_time = grant_created = t0
            else:
                code_hash, session_hash = self.hash32(), self.hash32()
                auth_time = t0 - rng.randint(5, 3600)
                grant_created = t0 - rng.randint(1, 5)
                if auth_time + SESSION_TTL > now:  # the browser session still lasts
                    sessions.append((session_hash, user, auth_time, auth_time,
                                     auth_time + SESSION_TTL, None))
                if grant_created + CODE_TTL + CODE_MEMORY > now:  # the used code is remembered
                    public = kind in ("spa", "native")
                    codes.append((
                        code_hash, grant_id, cid, user, session_hash, redirect,
                        self.b64(32) if public or rng.random() < 0.5 else None,
                        "S256" if public else None, scope, audience, self.b64(16), auth_time,
                        grant_created, grant_created + CODE_TTL, t0, None,
                    ))
                key = (user, cid, audience)
                seen = consents.get(key)
                if seen is None:
                    consents[key] = [scope, grant_created, grant_created]
                else:
                    seen[0] = scope
                    seen[1] = min(seen[1], grant_created)
                    seen[2] = max(seen[2], grant_created)
            gap = min(rng.randint(3600, REFRESH_IDLE_TTL), (now - t0) // k)
            last_issued = t0 + (k - 1) * gap
            revoked = rng.random() < 0.03
            revoked_at = rng.randint(last_issued, now) if revoked else None
            grants.append((grant_id, cid, user, grant_created, family_expires, revoked_at, None))
            parent = None
            for j in range(k):
                issued = t0 + j * gap
                token_hash = self.hash32()
                tokens.append((
                    token_hash, family_id, parent, grant_id, cid, user, scope, audience, code_hash,
                    issued, min(issued + REFRESH_IDLE_TTL, family_expires), family_expires,
                    session_hash, auth_time, t0 + (j + 1) * gap if j < k - 1 else None, revoked_at,
                ))
                parent = token_hash
            if not revoked:
                live.append((grant_id, cid))
        consent_rows = [
            (u, c, a, s, first, last) for (u, c, a), (s, first, last) in consents.items()
        ]
        revoked_rows = []
        for _ in range(min(self.args.revoked_access_tokens, len(live))):
            grant_id, cid = live[rng.randrange(len(live))]
            # Revoked in the last 50 minutes; the token would have expired within the hour
            # it was issued in, but not yet (or the janitor would have deleted the row).
            revoked = now - rng.randint(0, ACCESS_TOKEN_TTL - 600)
            expires = rng.randint(now + 60, revoked + ACCESS_TOKEN_TTL)
            # jti = "<grant id>.<16 random bytes, base64url>" (tokens/access.rs).
            revoked_rows.append((f"{grant_id}.{self.b64(16)}", cid, revoked, expires))
        return grants, tokens, sessions, codes, consent_rows, revoked_rows


# ---------------------------------------------------------------------------------- seeding


def check_store(store) -> None:
    try:
        store.query("SELECT COUNT(*) FROM registration_quota")
        store.query("SELECT userinfo_claims FROM grants WHERE 1 = 0")
        store.query("SELECT revision FROM clients WHERE 1 = 0")
    except (sqlite3.Error, subprocess.CalledProcessError) as e:
        detail = (e.stderr or "").strip() if isinstance(e, subprocess.CalledProcessError) else e
        die(f"{detail}\nthe store is not reachable or not migrated (or not to the version this "
            "script knows); run `valet migrate` with VALET_DATABASE_URL set to it first")
    rows = store.query(
        "SELECT COUNT(*) FROM users WHERE username >= 'seed-user' AND username < 'seed-uses'"
    )
    if int(rows[0][0]) > 0:
        die("the store already holds seeded users (seed-user…); seed a fresh store")


def seed(store, args) -> None:
    password_hash = args.password_hash or SEED_PASSWORD_HASH
    check_store(store)
    now = int(time.time())
    gen = Gen(args, now)
    total = time.monotonic()

    def step(label, make):
        t = time.monotonic()
        result = make()
        log(f"  {label:<34} {time.monotonic() - t:7.1f} s")
        return result

    def load(table, columns, rows):
        t = time.monotonic()
        store.load(table, columns, rows, rebuild=args.rebuild_indexes and len(rows) >= 50_000)
        dt = time.monotonic() - t
        rate = len(rows) / dt if dt > 0 else 0
        log(f"  load {table:<29} {dt:7.1f} s  {len(rows):>10,} rows  {rate:>10,.0f} rows/s")

    log(f"seeding {store.name} store: {args.users:,} users, {args.clients:,} clients, "
        f"{args.refresh_tokens:,} refresh tokens")
    apis = step("generate apis", gen.apis)
    clients = step("generate clients", gen.clients)
    users = step("generate users", lambda: gen.users(password_hash))
    grants, tokens, sessions, codes, consents, revoked = step("generate families", gen.families)
    load("apis", ["identifier", "name", "scopes", "created_at"], apis)
    load("clients", Gen.CLIENT_COLUMNS, clients)
    del clients
    load("users", Gen.USER_COLUMNS, users)
    del users
    load("grants", Gen.GRANT_COLUMNS, grants)
    del grants
    load("refresh_tokens", Gen.REFRESH_COLUMNS, tokens)
    del tokens
    load("consents", Gen.CONSENT_COLUMNS, consents)
    load("sessions", Gen.SESSION_COLUMNS, sessions)
    load("authorization_codes", Gen.CODE_COLUMNS, codes)
    load("revoked_access_tokens", Gen.REVOKED_COLUMNS, revoked)
    step("ANALYZE", store.analyze)
    log(f"  {'total':<34} {time.monotonic() - total:7.1f} s")
    if isinstance(store, Sqlite):
        size = sum(
            os.path.getsize(p) for p in (store.path, store.path + "-wal") if os.path.exists(p)
        )
        log(f"  SQLite file size: {size / 2**20:,.0f} MiB")
    else:
        size = store.query("SELECT pg_size_pretty(pg_database_size(current_database()))")[0][0]
        log(f"  PostgreSQL database size: {size}")


# ---------------------------------------------------------------------------------- explain


def rust_sql_constants(path: Path) -> dict[str, str]:
    """The statement texts of src/store/sql.rs: `pub const NAME: &str = …;` built of string
    literals, concat!() and the file's own macro_rules! (with or without `$x:literal`
    arguments); `[&str; N]` arrays as NAME[0], NAME[1]…; purge() arms as purge(Kind)."""
    src = path.read_text()
    macros: dict[str, tuple[list[str], str]] = {}
    for m in re.finditer(r"macro_rules!\s*(\w+)\s*\{\s*\(([^)]*)\)\s*=>\s*\{", src):
        params = re.findall(r"\$(\w+)\s*:\s*\w+", m.group(2))
        depth, i = 1, m.end()
        while depth:
            c = src[i]
            if c == '"':
                _, i = parse_rust_string(src, i)
                continue
            depth += {"{": 1, "}": -1}.get(c, 0)
            i += 1
        macros[m.group(1)] = (params, src[m.end():i - 1])

    def expr(text: str, i: int, env: dict[str, str]) -> tuple[str, int]:
        i = skip_ws(text, i)
        if text[i] == '"':
            return parse_rust_string(text, i)
        if text[i] == "$":
            m = re.compile(r"\$(\w+)").match(text, i)
            return env[m.group(1)], m.end()
        m = re.compile(r"(\w+)!\s*\(").match(text, i)
        if not m:
            raise ValueError(f"cannot evaluate: {text[i:i + 40]!r}")
        name, i = m.group(1), m.end()
        args = []
        while True:
            i = skip_ws(text, i)
            if text[i] == ")":
                i += 1
                break
            value, i = expr(text, i, env)
            args.append(value)
            i = skip_ws(text, i)
            if text[i] == ",":
                i += 1
        if name == "concat":
            return "".join(args), i
        params, body = macros[name]
        value, _ = expr(body, 0, dict(zip(params, args)))
        return value, i

    out: dict[str, str] = {}
    for m in re.finditer(r"pub const (\w+): (&str|\[&str; \d+\]) =", src):
        i = m.end()
        if m.group(2) == "&str":
            out[m.group(1)], _ = expr(src, i, {})
        else:
            i = src.index("[", i) + 1
            n = 0
            while True:
                i = skip_ws(src, i)
                if src[i] == "]":
                    break
                out[f"{m.group(1)}[{n}]"], i = expr(src, i, {})
                n += 1
                i = skip_ws(src, i)
                if src[i] == ",":
                    i += 1
    for m in re.finditer(r"Purge::(\w+) =>\s*\{\s*", src):
        out[f"purge({m.group(1)})"], _ = parse_rust_string(src, m.end())
    return out


def skip_ws(text: str, i: int) -> int:
    while True:
        while text[i].isspace():
            i += 1
        if text.startswith("//", i):
            i = text.index("\n", i)
            continue
        return i


def parse_rust_string(text: str, i: int) -> tuple[str, int]:
    assert text[i] == '"'
    i += 1
    out = []
    while text[i] != '"':
        c = text[i]
        if c == "\\":
            n = text[i + 1]
            if n == "\n":  # line continuation: the newline and the next line's indent go
                i += 2
                while text[i] in " \t\n\r":
                    i += 1
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out), i + 1


# What each statement binds, $1 first (see src/store/shared.rs), grouped by how hot it is.
# A successor refresh token's columns (in sql.rs's refresh_columns! order).
SUCCESSOR = ["bytes", "text", "token_hash", "grant_id", "client_id", "user_id", "scope",
             "audience", "null", "now", "later", "family_expiry", "null", "null"]
# A family's first token: no parent.
FIRST_TOKEN = ["bytes", "text", "null", *SUCCESSOR[3:]]
# Statements SQLite cannot run (a data-modifying WITH), explained on PostgreSQL only.
POSTGRES_ONLY = {"ROTATE_REFRESH_THEN_INSERT", "WITHDRAW_SUCCESSOR_THEN_INSERT",
                 "INSERT_FIRST_REFRESH", "CONSUME_CODE_WITH_FIRST_REFRESH"}
# Their SQLite counterparts: statements in one text, each explained on its own.
SQLITE_ONLY = {"EXTEND_THEN_INSERT_FIRST_REFRESH", "CONSUME_CODE_WITH_FIRST_REFRESH_IN_ONE_TRANSACTION",
               "ROTATE_REFRESH_IN_ONE_TRANSACTION", "WITHDRAW_SUCCESSOR_IN_ONE_TRANSACTION"}
# What a text's transaction is made of besides its statements: nothing to plan.
TRANSACTION_CONTROL = {"BEGIN IMMEDIATE", "COMMIT"}

HOT = {
    # token endpoint: client authentication, audience, user
    "SELECT_CLIENT": ["client_id"],
    "SELECT_API": ["api"],
    # password grant
    "SELECT_USER_BY_USERNAME": ["username"],
    "RESERVE_LOGIN": ["limiter_key", "now", "window_start", "int5", "int900"],
    "RELEASE_LOGIN": ["limiter_key"],
    "LOGIN_LOCK_OF": ["limiter_key"],
    "INSERT_GRANT": ["new_uuid", "client_id", "user_id", "now", "later"],
    # code exchange
    "SELECT_CODE_AND_USER": ["code_hash", "client_id"],
    "CONSUME_CODE": ["code_hash", "client_id", "now"],
    # ... with the family's first token (its columns first, then CONSUME_CODE's)
    "CONSUME_CODE_WITH_FIRST_REFRESH": [*FIRST_TOKEN, "code_hash", "client_id", "now"],
    "CONSUME_CODE_WITH_FIRST_REFRESH_IN_ONE_TRANSACTION": [*FIRST_TOKEN, "code_hash", "client_id", "now"],
    "CODE_STATE": ["code_hash"],
    # a family's first token and its grant's new expiry
    "INSERT_FIRST_REFRESH": FIRST_TOKEN,
    "EXTEND_THEN_INSERT_FIRST_REFRESH": FIRST_TOKEN,
    "SELECT_SESSION": ["session_hash", "now"],
    "INSERT_SESSION_CLIENT": ["session_hash", "client_id", "text", "user_id", "later"],
    # refresh rotation (the token with its user; re-read after a lost race)
    "SELECT_REFRESH_AND_USER": ["token_hash"],
    "SELECT_REFRESH": ["token_hash"],
    # the conditional write and the successor's insert: one statement on PostgreSQL, one
    # transaction in one text on SQLite
    "ROTATE_REFRESH_THEN_INSERT": ["token_hash", "now", *SUCCESSOR],
    "WITHDRAW_SUCCESSOR_THEN_INSERT": ["token_hash", "now", *SUCCESSOR],
    "ROTATE_REFRESH_IN_ONE_TRANSACTION": ["token_hash", "now", *SUCCESSOR],
    "WITHDRAW_SUCCESSOR_IN_ONE_TRANSACTION": ["token_hash", "now", *SUCCESSOR],
    "REVOKE_GRANT": ["grant_id", "now"],
    "REVOKE_GRANT_REFRESH_TOKENS": ["grant_id", "now"],
    # introspection, userinfo, revocation
    # the deny-list check of the requests in flight: a lone id, or 32 padded with NULL
    "REVOKED_ONE": ["jti"],
    "REVOKED_AMONG": ["jti", *["null"] * 31],
    "GRANT_STATUS_AND_USER": ["grant_id", "user_id"],
    "REVOKE_ACCESS_TOKEN": ["jti", "client_id", "now", "later"],
    # authorize / consent / login pages (the signed-in session's user)
    "SELECT_USER_BY_ID": ["user_id"],
    "SELECT_CONSENT": ["user_id", "client_id", "audience"],
    "UPSERT_CONSENT": ["user_id", "client_id", "audience", "scope", "now"],
    "SELECT_PENDING": ["text", "now"],
    "TAKE_PENDING_OF_CLIENT": ["text", "now", "client_id"],
    "SET_GRANT_USERINFO_CLAIMS": ["grant_id", "text"],
    "USE_CLIENT_ASSERTION": ["client_id", "text", "later", "now"],
    # CORS (cached for clients.cache_ttl)
    "CLIENT_ORIGINS": [],
}
OTHER = {
    "COUNT_CLIENTS": [],
    "INSERT_CLIENT_UNLESS_USER": ["new_id", "text", "bytes", "text", "text", "text", "text",
                                  "text", "text", "false", "text", "null", "false", "null",
                                  "null", "null", "null", "now", "now"],
    "INSERT_USER_UNLESS_CLIENT": ["new_uuid", "text", "text", "text", "text", "text", "false",
                                  "now", "now"],
    "GRANT_STATUS": ["grant_id"],  # Store::grant_revoked; requests read GRANT_STATUS_AND_USER
    "USER_ID_BY_USERNAME": ["username"],
    "LOCK_USER": ["username"],
    "END_USER_ACCESS[0]": ["user_id", "now"],
    "END_USER_ACCESS[1]": ["user_id", "now"],
    "END_USER_ACCESS[2]": ["user_id", "now"],
    "DELETE_UNREDEEMED_USER_CODES": ["user_id"],
    "QUEUE_USER_LOGOUTS": ["user_id", "now"],
    "FORGET_USER_SESSION_CLIENTS": ["user_id"],
    "QUEUE_SESSION_LOGOUTS": ["session_hash", "now"],
    "FORGET_SESSION_CLIENTS": ["session_hash"],
    "END_SESSION": ["session_hash", "now"],
    "DELETE_USER_REMAINS[0]": ["user_id"],
    "DELETE_USER_REMAINS[1]": ["user_id"],
    "DELETE_USER_REMAINS[2]": ["user_id"],
    "DELETE_USER_REMAINS[3]": ["user_id"],
    "DELETE_USER_REMAINS[4]": ["user_id"],
    "DELETE_CLIENT_REMAINS[0]": ["client_id"],
    "DELETE_CLIENT_REMAINS[1]": ["client_id"],
    "DELETE_CLIENT_REMAINS[2]": ["client_id"],
    "DELETE_CLIENT_REMAINS[3]": ["client_id"],
    "DELETE_CLIENT_REMAINS[4]": ["client_id"],
    "DELETE_CLIENT_REMAINS[5]": ["client_id"],
    "DELETE_CLIENT_REMAINS[6]": ["client_id"],
    "SELECT_USERS": [],
    "SELECT_CLIENTS": [],
    "DUE_LOGOUT_DELIVERIES": ["now", "int100"],
    "SELECT_DEVICE_BY_USER_CODE": ["text", "now"],
    "SELECT_DEVICE": ["bytes", "client_id"],
}
for _kind in ("AuthorizationCodes", "PendingRequests", "Sessions", "RefreshTokens", "Grants",
              "RevokedAccessTokens", "LoginFailures", "SessionClients", "ClientAssertions",
              "RegistrationTokens"):
    OTHER[f"purge({_kind})"] = ["now", "int1000"]


def samples(store, now: int) -> dict:
    def one(sql, default=None):
        rows = store.query(sql)
        return rows[0] if rows else default

    def blob(v):
        if isinstance(v, bytes) or v is None:
            return v
        return bytes.fromhex(v.removeprefix("\\x"))

    token_hash_sql = ("SELECT token_hash, grant_id, client_id, user_id, COALESCE(audience, '') "
                      "FROM refresh_tokens WHERE rotated_at IS NULL LIMIT 1")
    rt = one(token_hash_sql) or (None, "00000000-0000-4000-8000-000000000000", "seed", "u", "")
    user = one(f"SELECT username FROM users WHERE id = '{rt[3]}'", ("seed-user0000001",))
    code = one("SELECT code_hash FROM authorization_codes LIMIT 1", (os.urandom(32),))
    session = one("SELECT id_hash FROM sessions LIMIT 1", (os.urandom(32),))
    jti = one("SELECT jti FROM revoked_access_tokens LIMIT 1", (f"{rt[1]}.abc",))
    api = one("SELECT identifier FROM apis LIMIT 1", ("https://seed-api-01.example.com",))
    return {
        "token_hash": blob(rt[0]) or os.urandom(32), "grant_id": rt[1], "client_id": rt[2],
        "user_id": rt[3], "audience": rt[4], "username": user[0], "code_hash": blob(code[0]),
        "session_hash": blob(session[0]), "jti": jti[0], "api": api[0],
        "limiter_key": f"user:{user[0]}", "now": now, "later": now + 3600,
        "family_expiry": now + REFRESH_ABSOLUTE_TTL,
        "window_start": now - 900, "int5": 5, "int900": 900, "int100": 100, "int1000": 1000,
        "new_uuid": "11111111-2222-4333-8444-555555555555", "new_id": "seedExplainNew000000000",
        "text": "x", "bytes": b"\x00" * 32, "scope": "openid", "false": False, "null": None,
    }


def explain(store, sql_rs: Path) -> int:
    """Print the plan of each statement; flag full scans. Returns the number of full scans
    on hot paths."""
    consts = rust_sql_constants(sql_rs)
    values = samples(store, int(time.time()))
    counts: dict[str, int] = {}
    scan_re = (re.compile(r"^\s*SCAN (\w+)(.*)$") if isinstance(store, Sqlite)
               else re.compile(r"Seq Scan on (\w+)()"))
    hot_findings, other_findings = [], []
    leading = store.leading_columns() if isinstance(store, Postgres) else {}
    missing = [n for n in list(HOT) + list(OTHER) if n not in consts]
    if missing:
        log(f"warning: not in {sql_rs}: {', '.join(missing)}")
    for group, table in (("hot paths", HOT), ("admin, janitor and rare paths", OTHER)):
        log(f"=== {group} ({store.name}) ===")
        for name, kinds in table.items():
            if name not in consts or (name in POSTGRES_ONLY and isinstance(store, Sqlite)) \
                    or (name in SQLITE_ONLY and isinstance(store, Postgres)):
                continue
            sql = consts[name]
            n_params = max([int(x) for x in re.findall(r"\$(\d+)", sql)] or [0])
            if n_params != len(kinds):
                log(f"warning: {name} binds {n_params} parameters, the table says {len(kinds)}")
            lits = [store.literal(k, values[k]) for k in kinds]
            text = re.sub(r"\$(\d+)", lambda m: lits[int(m.group(1)) - 1], sql)
            try:
                parts = ([p for p in text.split("; ") if p not in TRANSACTION_CONTROL]
                         if name in SQLITE_ONLY else [text])
                plan = [line for part in parts for line in store.plan(part)]
            except (sqlite3.Error, subprocess.CalledProcessError) as e:
                log(f"--- {name}: EXPLAIN failed: {e}")
                continue
            log(f"--- {name}: {sql}")
            for line in plan:
                log(f"    {line}")
            # PostgreSQL reads a small table whole even where an index would serve: ask again
            # with seq scans priced out. A Seq Scan left then has no index to use.
            forced = None
            if isinstance(store, Postgres) and any(scan_re.search(x) for x in plan):
                forced = store.plan(text, seqscan=False)
                log("    with enable_seqscan = off:")
                for line in forced:
                    log(f"      {line}")
            final = forced if forced is not None else plan
            for n, line in enumerate(final):
                m = scan_re.search(line)
                if m and m.group(1) == "CONSTANT":  # SQLite's "SCAN CONSTANT ROW": no table
                    m = None
                if not m and leading:
                    # An index scan whose condition leaves out the index's first column
                    # reads the whole index (PostgreSQL 15 has no skip scan).
                    im = re.search(r"Index (?:Only )?Scan using (\w+) on (\w+)", line)
                    cond = final[n + 1] if n + 1 < len(final) else ""
                    if im and "Index Cond:" in cond and not re.search(
                            rf"\b{leading.get(im.group(1), '')}\b", cond):
                        m = re.match(r"(?:.*?) on (\w+)", line[im.start():])
                        line = f"{line.strip()} [{cond.strip()}: not on the leading column]"
                if not m:
                    continue
                tbl = m.group(1)
                if tbl not in counts:
                    try:
                        counts[tbl] = int(store.query(f"SELECT COUNT(*) FROM {tbl}")[0][0])
                    except Exception:
                        counts[tbl] = -1
                note = f"{name}: {line.strip()} ({counts[tbl]:,} rows in {tbl})"
                (hot_findings if table is HOT else other_findings).append(note)
    log("=== full scans ===")
    for label, found in (("hot", hot_findings), ("other", other_findings)):
        for f in found:
            log(f"  [{label}] {f}")
    if not hot_findings and not other_findings:
        log("  none")
    return len(hot_findings)


# ------------------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True,
                   help="sqlite:///path/valet.db or postgres://user@host:port/db")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=100_000)
    p.add_argument("--refresh-tokens", type=int, default=1_000_000)
    p.add_argument("--apis", type=int, default=20)
    p.add_argument("--revoked-access-tokens", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--password-hash", default=None,
                   help="Argon2id PHC string for every seeded user (default: the built-in "
                        f"hash of '{SEED_PASSWORD}')")
    p.add_argument("--no-rebuild-indexes", dest="rebuild_indexes", action="store_false",
                   help="insert into the indexes row by row instead of dropping a big table's "
                        "secondary indexes and building them again after the load (same "
                        "transaction, same CREATE statements)")
    p.add_argument("--explain", action="store_true",
                   help="print the query plans of the store's statements instead of seeding")
    p.add_argument("--sql-rs", type=Path,
                   default=Path(__file__).resolve().parent.parent / "src/store/sql.rs")
    args = p.parse_args()
    for name in ("users", "clients", "refresh_tokens", "apis", "revoked_access_tokens"):
        if getattr(args, name) < 0:
            die(f"--{name.replace('_', '-')} must not be negative")
    if args.apis == 0 and args.clients:
        die("--apis must be at least 1 when clients are seeded")
    store = open_store(args.database_url)
    if args.explain:
        explain(store, args.sql_rs)
    else:
        seed(store, args)


if __name__ == "__main__":
    main()
