"""Export and import routes."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.preconditions import etag
from chat_sessions.sessions.schemas import SessionRead
from chat_sessions.transfer import service
from chat_sessions.transfer.schemas import ExportDocument, ImportDocument


class TransferController(Controller):
    path = "/sessions"
    tags = ["export and import"]

    @get(
        "/{session_id:str}/export",
        summary="A session, its messages and tool calls",
        responses=tenant_errors(404),
    )
    async def export_session(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
    ) -> ExportDocument:
        return await service.export_session(
            caller.tx, tenant_id=caller.tenant_id, session_id=session_id
        )

    @post(
        "/import",
        status_code=201,
        summary="Recreate an exported session under new ids",
        responses=tenant_errors(409, body=True),
    )
    async def import_session(
        self,
        caller: NamedDependency[Caller],
        data: JSONBody[ImportDocument],
    ) -> Response[SessionRead]:
        session = await service.import_session(
            caller.tx,
            tenant_id=caller.tenant_id,
            document=data,
            max_message_bytes=caller.settings.max_message_bytes,
            max_json_bytes=caller.settings.max_json_bytes,
        )
        return Response(
            session,
            status_code=201,
            headers={"Location": f"/v1/sessions/{session.id}", "ETag": etag(session.version)},
        )
