"""Which engine holds a sync's snapshot, and switching a source between Basic and Lightning.

The snapshot of a sync lives with one engine at a time. A marker file in the sync's state directory
(``engine.json``, kept by the state store like the snapshot files) names the engine that holds it; without
one, it is Basic (every sync began there). When a source's engine changes, its next run (or plan) first
carries the snapshot over (see LightningChangeDetector.carry_from_basic and carry_to_basic): the rows are
read out once and nothing is sent twice. Only once the new engine's snapshot is whole does the marker
change, so a crash in between leaves the old engine holding the snapshot and the carry is done again.
A Basic snapshot left behind is deleted then; a Lightning one left behind (Basic never writes to the
source) is overwritten by the next carry the other way.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from smartingest.cdc.base import ChangeSet, HashSpec
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.cdc.lightning import LightningChangeDetector
from smartingest.config.models import ModelConfig
from smartingest.errors import ConfigError, StateError
from smartingest.sources.base import Source

MARKER = "engine.json"
BASIC = "basic"
LIGHTNING = "lightning"

log = logging.getLogger(__name__)


class EngineSwitch:
    """The ChangeDetector a source's engine setting selects, carrying the snapshot over after a switch.

    ``lightning`` builds the Lightning detector when needed: for a Lightning source, and for a Basic one
    whose snapshot the Lightning engine still holds.
    """

    def __init__(
        self, engine: str, basic: BasicChangeDetector, lightning: Callable[[], LightningChangeDetector]
    ) -> None:
        self.engine = engine
        self.basic = basic
        self._lightning = lightning
        self._built: LightningChangeDetector | None = None

    @property
    def lightning(self) -> LightningChangeDetector:
        if self._built is None:
            self._built = self._lightning()
        return self._built

    def holder(self, sync_key: str) -> str:
        """The engine that holds the sync's snapshot."""
        path = self._marker(sync_key)
        self.basic.store.pull(sync_key, path.parent)
        try:
            return str(json.loads(path.read_text())["engine"])
        except FileNotFoundError:
            return BASIC
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{path} is unreadable ({exc}): run `sync reset`") from exc

    def plan(
        self,
        sync_key: str,
        source: Source,
        model: ModelConfig,
        spec: HashSpec,
        full_resync: bool = False,
        on_rows: Callable[[int], None] | None = None,
    ) -> ChangeSet:
        held_by = self.holder(sync_key)
        if held_by != self.engine:
            self._carry(sync_key, model, spec, held_by)
        if self.engine == LIGHTNING:
            return self.lightning.plan(sync_key, source, model, spec, full_resync, on_rows)
        return self.basic.plan(sync_key, source, model, spec, full_resync, on_rows)

    def _carry(self, sync_key: str, model: ModelConfig, spec: HashSpec, held_by: str) -> None:
        if self.engine == LIGHTNING:
            carried = self.lightning.carry_from_basic(self.basic, sync_key, model, spec)
            self._mark(sync_key, LIGHTNING)
            self.basic.reset(sync_key, others=False)
        else:
            try:
                carried = self.lightning.carry_to_basic(self.basic, sync_key, model, spec)
            except ConfigError as exc:  # the source can no longer be read as Lightning read it: start afresh
                log.warning("sync %s: the Lightning snapshot cannot be carried over (%s)", sync_key, exc)
                carried = 0
            if not carried:  # nothing the Lightning engine held: no Basic snapshot either
                self.basic.reset(sync_key, others=False)
            self._mark(sync_key, BASIC)
        log.info("sync %s: %d snapshot keys carried over from the %s engine", sync_key, carried, held_by)

    def _marker(self, sync_key: str) -> Path:
        return self.basic.sync_dir(sync_key) / MARKER

    def _mark(self, sync_key: str, engine: str) -> None:
        path = self._marker(sync_key)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"engine": engine}))
        os.replace(tmp, path)
        self.basic.store.push(sync_key, path)

    def reset(self, sync_key: str) -> bool:
        held_by = self.holder(sync_key)
        existed = False
        if held_by == LIGHTNING or self.engine == LIGHTNING:
            existed = self.lightning.reset(sync_key)
        existed = self.basic.reset(sync_key) or existed
        self._marker(sync_key).unlink(missing_ok=True)
        return existed

    def snapshot_size(self, sync_key: str) -> int:
        if self.holder(sync_key) == LIGHTNING:
            return self.lightning.snapshot_size(sync_key)
        return self.basic.snapshot_size(sync_key)
