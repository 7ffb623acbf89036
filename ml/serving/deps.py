"""Dependencies of the routes: the serving state of the app that received the request."""

from __future__ import annotations

from fastapi import Request

from ml.serving.state import ServingState


def serving_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state
