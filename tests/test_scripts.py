"""`core.scripts`: every Lua file is a registered script, loaded once per pool."""

from __future__ import annotations

from dataclasses import fields

from arq.connections import ArqRedis

from core.scripts import LUA_DIR, Scripts, preludes, scripts
from settings import Settings


def test_every_lua_file_is_a_script_and_every_script_a_file() -> None:
    scripts_on_disk = {path.stem for path in LUA_DIR.glob("*.lua") if not path.stem.startswith("_")}
    assert scripts_on_disk == {f.name for f in fields(Scripts)}


def test_every_prelude_name_is_filled_in() -> None:
    assert "__" not in preludes()


async def test_scripts_are_registered_once_per_pool(settings: Settings, redis: ArqRedis) -> None:
    assert scripts(redis) is scripts(redis)
    assert await scripts(redis).release_lock(keys=["missing-lock"], args=["owner"]) == 0
