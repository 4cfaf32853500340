"""What every route of the server needs: the workspace as it is now, for this request alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request

from smartingest import service


def workspace(request: Request) -> service.Workspace:
    # The definitions as they are now (another replica, or the CLI, may have changed them), in a workspace
    # of the request's own: requests never see each other's half-made changes.
    ws: service.Workspace = request.app.state.ws
    return replace(ws, config=ws.repository.load())


# Module-level: FastAPI reads these annotations by name from the module that uses them.
Ws = Annotated[service.Workspace, Depends(workspace)]
