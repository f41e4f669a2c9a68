"""The bundle store: policy bundles uploaded once, addressed by the sha256 of their bytes
(`raas_client.bundles.pack`), for evaluation jobs to name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from raas.service.blobs import BlobStore, receive
from raas.service.crud import jobs as job_crud
from raas.service.deps import AnyPrincipal, Person, State
from raas.service.errors import BundleNotFound, BundleTooLarge
from raas.service.schemas import BlobStored, ErrorPublic

router = APIRouter(prefix="/bundles", tags=["jobs"])

Sha256Path = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the bytes")]

OCTETS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def blob_store(state: Any) -> BlobStore:
    return BlobStore(state.settings.blobs)


def declared_size(request: Request, limit: int, what: str) -> None:
    """Refuse at once when Content-Length already says the body is too large."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BundleTooLarge(f"the {what} is {int(length)} bytes; at most {limit} are stored")


@router.put(
    "/{sha256}",
    response_model=BlobStored,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=OCTETS,
    responses={
        200: {"model": BlobStored, "description": "Already stored (nothing written)"},
        413: {"model": ErrorPublic, "description": "bundle_too_large"},
        422: {"model": ErrorPublic, "description": "bundle_hash_mismatch"},
    },
)
async def put_bundle(sha256: Sha256Path, request: Request, _: Person, state: State) -> Response:
    """Store a bundle (body: its bytes, `application/octet-stream`): 201 stored, 200 already
    there. The bytes must hash to the path's sha256; a refused upload leaves nothing."""
    limit = state.settings.max_bundle_bytes
    declared_size(request, limit, "bundle")
    store = blob_store(state)
    if await run_in_threadpool(store.exists, sha256):
        size = await run_in_threadpool(store.size, sha256)
        body = BlobStored(sha256=sha256, size=size, created=False)
        return Response(body.model_dump_json(), status_code=200, media_type="application/json")
    writer = await run_in_threadpool(store.writer, sha256, limit)
    created = await receive(request.stream(), writer)
    body = BlobStored(sha256=sha256, size=writer.size, created=created)
    return Response(
        body.model_dump_json(), status_code=201 if created else 200, media_type="application/json"
    )


@router.head("/{sha256}", responses={404: {"description": "bundle_not_found"}})
async def head_bundle(sha256: Sha256Path, _: AnyPrincipal, state: State) -> Response:
    """200 (with Content-Length) when the bundle is stored, 404 when not: upload only once."""
    store = blob_store(state)
    if not await run_in_threadpool(store.exists, sha256):
        return Response(status_code=404)
    size = await run_in_threadpool(store.size, sha256)
    return Response(status_code=200, headers={"Content-Length": str(size)})


@router.get(
    "/{sha256}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The bundle's bytes"},
        404: {"model": ErrorPublic, "description": "bundle_not_found"},
    },
)
def get_bundle(sha256: Sha256Path, principal: AnyPrincipal, state: State) -> FileResponse:
    """The bundle's bytes: for staff, a user who submitted a job with it, or the robot running
    such a job (its job worker). Anyone else gets the 404 of a missing bundle."""
    store = blob_store(state)
    allowed = principal.is_staff
    if not allowed:
        with state.db.read() as db:
            allowed = job_crud.may_read_bundle(
                db, sha256, user_id=principal.user.id, robot_id=principal.robot_id
            )
    if not allowed or not store.exists(sha256):
        raise BundleNotFound(f"no bundle {sha256}")
    return FileResponse(store.path(sha256), media_type="application/octet-stream")
