"""The HTTP application: ``create_app(settings)`` builds it; routes parse, authenticate, delegate.

Routes (all under ``/v1``; bearer tokens in ``Authorization``; errors are problem+json)::

    POST /v1/tasks                       admin   201 TaskCreatedOut      create a task
    GET  /v1/tasks?limit=100             admin   200 TaskListOut         newest first, <= 1000
    GET  /v1/tasks/{id}                  any     200 TaskInfoOut         key, encoding, length
    GET  /v1/tasks/{id}/status           any     200 TaskStatusOut       state and counters
    POST /v1/tasks/{id}/clients          admin   201 ClientsOut          register clients
    GET  /v1/tasks/{id}/reporters        admin   200 ReportersOut        who reported here
    GET  /v1/tasks/{id}/checks           admin   200 ShamirChecksOut     validated Shamir task:
                                                     this server's check values
    POST /v1/tasks/{id}/close            admin   200 TaskStatusOut       close now (idempotent)
    POST /v1/tasks/{id}/reports          client  201 ReportAcceptedOut   upload once
    GET  /v1/tasks/{id}/aggregate        holder  200 AggregateOut        (admin too)
    POST /v1/tasks/{id}/partials         holder  201 PartialsAcceptedOut partials or one batch
    POST /v1/tasks/{id}/certificates     holder  200 CertificateAcceptedOut  the holder's signature
                                                     over the task's statement (roster-checked)
    GET  /v1/tasks/{id}/result           any     200 ResultOut           sum, count, average
    GET  /v1/tasks/{id}/log              any     200 ReportLogOut        signed root, leaves
    GET  /v1/tasks/{id}/log/proof?leaf=  any     200 InclusionProofOut   a leaf's audit path
    GET  /v1/tasks/{id}/reports          holder  200 ReportPageOut       logged reports, paged
                                                                         (admin too; ?offset=
                                                                         &limit=)
    GET  /healthz                        none    200 {"status": "ok"}       liveness
    GET  /readyz                         none    200 {"status": "ready"}    readiness: the
                                                     database answers at the expected schema,
                                                     the worker pool runs (else 503 problem)
    GET  /metrics                        admin   200 Prometheus text        (anyone with
                                                     ``--metrics public``)
    GET  /                               none    200 service, version, links (docs, API)
    GET  /docs, /redoc                   none    200 the API's documentation (assets served
                                                     from /docs/static, no CDN: works offline)

"any" means the administrator or a client or key holder of that task.

Shamir tasks (``"scheme": "shamir"``, one of n servers; :mod:`smpcloud.protocol.sharing`) use the
same routes: a report carries ``share``; ``close`` takes ``{"clients": [participant set]}``;
``aggregate`` (admin) returns a ShamirAggregateOut, this server's share of the sum; there are no
key holders, partials or result (the analyst rebuilds the sum from t servers' shares).

Packed tasks (``"packing"`` in the task) use the same routes: a report carries the layout's
number of ciphertexts, and the result one sum and average per value. A key holder's upload
(``partials``) carries either one partial decryption per aggregate ciphertext or one ``batch``
with a single proof.

Route handlers are plain ``def`` functions: FastAPI runs them in its worker threads, so
ciphertext validation, proof verification, aggregation and combining never block the event
loop; aggregation and combining spread over a process pool (``Settings.workers``) that the
lifespan creates and shuts down. Authentication is the one exception: it runs on the event
loop, as it is a SHA-256 and one indexed read (~0.2 ms; readers do not wait for writers, in
SQLite's WAL mode as in PostgreSQL; once per task and process it also reads and caches the
task's metadata), and handing it to a thread of its own before the handler's thread cost ~15%
of uploads per second (measured with 16 concurrent uploaders). That holds for SQLite, a library
in the process; on a database across a socket (PostgreSQL) a read is a network round trip,
which on the event loop would serialise every request behind it, so there authentication runs
in a worker thread (:attr:`TaskService.reads_in_process`). Nothing is built at import time;
the application never changes the database schema: it refuses to start on a database that
``smpcloud db upgrade`` has not brought to its revision (:mod:`smpcloud.service.migrations`).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from smpcloud import __version__
from smpcloud.protocol.certificates import CertificateAcceptedOut, CertificateIn
from smpcloud.protocol.schemas import (
    DEFAULT_TASK_LIST_LIMIT,
    MAX_CLIENTS_LIMIT,
    MAX_TASK_LIST_LIMIT,
    AggregateOut,
    ClientsIn,
    ClientsOut,
    CloseIn,
    InclusionProofOut,
    PartialsAcceptedOut,
    PartialsIn,
    ProblemOut,
    ReportAcceptedOut,
    ReportersOut,
    ReportIn,
    ReportLogOut,
    ReportPageOut,
    ResultOut,
    ShamirAggregateOut,
    ShamirChecksOut,
    TaskCreatedOut,
    TaskIn,
    TaskInfoOut,
    TaskListOut,
    TaskStatusOut,
)
from smpcloud.service.auth import (
    ADMIN,
    ADMIN_OR_HOLDER,
    ANY_ROLE,
    CLIENT,
    HOLDER,
    Principal,
    Role,
)
from smpcloud.service.config import Settings
from smpcloud.service.db import make_engine, utcnow
from smpcloud.service.metrics import METRICS_MEDIA_TYPE, observe_request, render_metrics
from smpcloud.service.middleware import (
    AuthenticateFirstMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    RequestDone,
)
from smpcloud.service.migrations import check_migrated
from smpcloud.service.problems import (
    PROBLEM_MEDIA_TYPE,
    install_problem_handlers,
    problem_response,
)
from smpcloud.service.readiness import NOT_READY_SLUG, missing_for_readiness
from smpcloud.service.tasks import TaskService

logger = logging.getLogger("smpcloud.service")
access_logger = logging.getLogger("smpcloud.access")

_bearer = HTTPBearer(
    auto_error=False,
    description="The administrator token, or a client's or key holder's token for the task.",
)
BearerToken = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
TaskId = Annotated[str, Path(min_length=1, max_length=64, description="The task id.")]

_DESCRIPTION: Final = """\
Secure aggregation (smpcloud): clients upload values encrypted under a threshold Paillier key;
the server multiplies ciphertexts it cannot read; t of n key holders decrypt only the aggregate.
Reveals the count and, after threshold decryption, the sum and the average of each element.

Shamir mode: n non-colluding servers each receive one Shamir share per client and sum the
shares of a participant set fixed by the administrator; any t servers' shares of the sum
rebuild it. A server sees only random shares and the participant set.
"""


#: Where /docs and /redoc load their scripts, styles and icon from (this server).
DOCS_ASSETS_PATH: Final = "/docs/static"
_INDEX_LINKS: Final = {
    "docs": "/docs",
    "redoc": "/redoc",
    "openapi": "/openapi.json",
    "health": "/healthz",
    "ready": "/readyz",
    "api": "/v1",
}

_PROBLEM_DESCRIPTIONS: Final = {
    400: 'Unreadable request: a body that is not UTF-8 ("error parsing the body"), or an '
    "invalid Content-Length",
    401: "No bearer token",
    403: "Token not valid for this task or operation",
    404: "Unknown task",
    409: "Conflicts with the task's state (duplicate, closed, not closed yet, ...)",
    413: "Request body too large",
    422: "Invalid input (malformed ciphertext, wrong length, failed proof, ...)",
}


def _problem(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of error responses (all problem+json)."""
    return {
        code: {
            "model": ProblemOut,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": _PROBLEM_DESCRIPTIONS.get(code, "Error"),
        }
        for code in codes
    }


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


#: Statuses at which a path's task id is logged: the route found the task and the caller may
#: act on it (otherwise the "task id" is whatever a client put in the path).
_TASK_ID_LOGGED_BELOW: Final = 400
_READYZ_DESCRIPTION: Final = """\
Readiness: 200 when this process can serve the API now: the database answers and has the
expected schema, and the worker pool is started and not shutting down. Otherwise 503
problem+json (`urn:smpcloud:problem:not-ready`) whose `missing` member lists what is missing.
For a load balancer's or an orchestrator's readiness probe; `/healthz` is the liveness probe.
"""
_METRICS_DESCRIPTION: Final = """\
Prometheus metrics (text exposition format): uploads accepted and refused by reason, partial
decryptions, tasks by state, reports per open task (the newest 100), request durations by
route template, the group commit's batch sizes and times, the worker pool's jobs. Needs the
administrator's bearer token unless the server runs with `--metrics public`. Reveals task ids,
counts and timings; never tokens, ciphertexts, shares or values.
"""


def _request_done(json_access_log: bool) -> Callable[[RequestDone], None]:
    """The callback of :class:`RequestContextMiddleware`: metrics, and the JSON access log."""

    def done(request: RequestDone) -> None:
        observe_request(request.method, request.route, request.status, request.seconds)
        if json_access_log:
            known = request.status < _TASK_ID_LOGGED_BELOW or request.status == 409
            access_logger.info(
                "%s %s %d",
                request.method,
                request.route,
                request.status,
                extra={
                    "request_id": request.request_id,
                    "method": request.method,
                    "route": request.route,
                    "status": request.status,
                    "duration_ms": round(request.seconds * 1000, 3),
                    "task_id": request.task_id if known else None,
                },
            )

    return done


def build_router(service: TaskService) -> APIRouter:
    """Return the ``/v1`` routes bound to ``service``.

    Authentication is a dependency, so it runs before the body is validated: a request
    without a valid token gets 401/403 whatever its body (only unparsable JSON is refused
    first, with 422).
    """
    router = APIRouter(prefix="/v1", tags=["tasks"])
    auth_errors = (400, 401, 403, 404, 413, 422)

    def on_task(allowed: frozenset[Role], action: str) -> Callable[..., Awaitable[Principal]]:
        # SQLite: on the event loop, not in a thread (see the module docstring). A database
        # across a socket (PostgreSQL): in a thread, as a blocking round trip on the loop
        # would serialise every request behind it.
        if service.reads_in_process:

            async def dependency(task_id: TaskId, credentials: BearerToken) -> Principal:
                return service.authenticate(_token(credentials), task_id, allowed, action)

            return dependency

        async def threaded(task_id: TaskId, credentials: BearerToken) -> Principal:
            return await run_in_threadpool(
                service.authenticate, _token(credentials), task_id, allowed, action
            )

        return threaded

    def admin_only(credentials: BearerToken) -> Principal:
        return service.authenticate(_token(credentials), None, ADMIN, "create tasks")

    def admin_lister(credentials: BearerToken) -> Principal:
        return service.authenticate(_token(credentials), None, ADMIN, "list tasks")

    AdminAny = Annotated[Principal, Depends(admin_only)]
    AdminLister = Annotated[Principal, Depends(admin_lister)]
    AdminOfTask = Annotated[Principal, Depends(on_task(ADMIN, "manage this task"))]
    Reader = Annotated[Principal, Depends(on_task(ANY_ROLE, "read this task"))]
    Reporter = Annotated[Principal, Depends(on_task(CLIENT, "upload reports"))]
    AggregateReader = Annotated[Principal, Depends(on_task(ADMIN_OR_HOLDER, "read the aggregate"))]
    Decryptor = Annotated[Principal, Depends(on_task(HOLDER, "upload partial decryptions"))]
    ReportsReader = Annotated[
        Principal, Depends(on_task(ADMIN_OR_HOLDER, "read the logged reports"))
    ]
    Certifier = Annotated[Principal, Depends(on_task(HOLDER, "certify this task"))]

    @router.post(
        "/tasks",
        status_code=status.HTTP_201_CREATED,
        responses=_problem(400, 401, 403, 413, 422),
        summary="Create a task (administrator); returns one secret token per key holder",
    )
    def create_task(_admin: AdminAny, body: TaskIn, response: Response) -> TaskCreatedOut:
        _no_store(response)
        return service.create_task(body)

    @router.get(
        "/tasks",
        responses=_problem(401, 403, 422),
        summary="List the tasks (administrator), newest first, with their state and counts",
    )
    def list_tasks(
        _admin: AdminLister,
        limit: Annotated[
            int,
            Query(ge=1, le=MAX_TASK_LIST_LIMIT, description="The most tasks to return."),
        ] = DEFAULT_TASK_LIST_LIMIT,
    ) -> TaskListOut:
        return service.list_tasks(limit)

    @router.get(
        "/tasks/{task_id}",
        responses=_problem(*auth_errors),
        summary="Task information: threshold public key, encoding, vector length",
    )
    def task_info(task_id: TaskId, _who: Reader) -> TaskInfoOut:
        return service.info(task_id)

    @router.get(
        "/tasks/{task_id}/status",
        responses=_problem(*auth_errors),
        summary="Task state and counters",
    )
    def task_status(task_id: TaskId, who: Reader) -> TaskStatusOut:
        return service.status(task_id, who)

    @router.post(
        "/tasks/{task_id}/clients",
        status_code=status.HTTP_201_CREATED,
        responses=_problem(*auth_errors, 409),
        summary="Register clients (administrator); tokens are shown once",
    )
    def register_clients(
        task_id: TaskId, _admin: AdminOfTask, body: ClientsIn, response: Response
    ) -> ClientsOut:
        _no_store(response)
        return service.register_clients(task_id, body)

    @router.get(
        "/tasks/{task_id}/reporters",
        responses=_problem(*auth_errors),
        summary="The clients whose report this server holds (administrator)",
    )
    def reporters(task_id: TaskId, _admin: AdminOfTask) -> ReportersOut:
        return service.reporters(task_id)

    @router.get(
        "/tasks/{task_id}/checks",
        responses=_problem(*auth_errors, 409),
        summary="This server's check values of every reporter of a Shamir task with validity "
        "'range' (administrator)",
    )
    def checks(task_id: TaskId, _admin: AdminOfTask) -> ShamirChecksOut:
        return service.checks(task_id)

    @router.post(
        "/tasks/{task_id}/close",
        responses=_problem(*auth_errors, 409),
        summary="Close the task now (administrator): aggregate, or mark insufficient; a Shamir "
        "task takes its participant set",
    )
    def close_task(
        task_id: TaskId, _admin: AdminOfTask, body: CloseIn | None = None
    ) -> TaskStatusOut:
        if body is None:
            service.close(task_id)
        else:
            service.close(task_id, clients=body.clients, refused=body.refused, checks=body.checks)
        return service.status(task_id)

    @router.post(
        "/tasks/{task_id}/reports",
        status_code=status.HTTP_201_CREATED,
        responses=_problem(*auth_errors, 409),
        summary="Upload this client's encrypted report (once)",
    )
    def submit_report(task_id: TaskId, client: Reporter, body: ReportIn) -> ReportAcceptedOut:
        return service.submit_report(task_id, client, body)

    @router.get(
        "/tasks/{task_id}/aggregate",
        responses=_problem(*auth_errors, 409),
        summary="The aggregate ciphertexts and count (key holders), once the task is closed; "
        "a Shamir server's share of the sum (administrator)",
    )
    def get_aggregate(task_id: TaskId, _who: AggregateReader) -> AggregateOut | ShamirAggregateOut:
        return service.aggregate(task_id)

    @router.post(
        "/tasks/{task_id}/partials",
        status_code=status.HTTP_201_CREATED,
        responses=_problem(*auth_errors, 409),
        summary="Upload this key holder's partial decryptions with proofs (once)",
    )
    def submit_partials(
        task_id: TaskId, holder: Decryptor, body: PartialsIn
    ) -> PartialsAcceptedOut:
        return service.submit_partials(task_id, holder, body)

    @router.post(
        "/tasks/{task_id}/certificates",
        responses=_problem(*auth_errors, 409),
        summary="Upload this key holder's certificate of the task (its signature over the "
        "task's key and parameters, checked against the task's roster)",
    )
    def certify(task_id: TaskId, holder: Certifier, body: CertificateIn) -> CertificateAcceptedOut:
        return service.certify(task_id, holder, body)

    @router.get(
        "/tasks/{task_id}/result",
        responses=_problem(*auth_errors, 409),
        summary="The released sum, count and average per element",
    )
    def get_result(task_id: TaskId, _who: Reader) -> ResultOut:
        return service.result(task_id)

    @router.get(
        "/tasks/{task_id}/log",
        responses=_problem(*auth_errors, 409),
        summary="The signed report log of a closed Paillier task: root, count and leaves",
    )
    def report_log(
        task_id: TaskId,
        _who: Reader,
        leaves: Annotated[bool, Query(description="Include the leaves (hex, log order).")] = True,
    ) -> ReportLogOut:
        return service.report_log(task_id, leaves=leaves)

    @router.get(
        "/tasks/{task_id}/log/proof",
        responses=_problem(*auth_errors, 409),
        summary="Where a report's leaf is in the published log, with its audit path",
    )
    def log_proof(
        task_id: TaskId,
        _who: Reader,
        leaf: Annotated[str, Query(min_length=64, max_length=64, description="The leaf (hex).")],
    ) -> InclusionProofOut:
        return service.log_proof(task_id, leaf)

    @router.get(
        "/tasks/{task_id}/reports",
        responses=_problem(*auth_errors, 409),
        summary="The logged reports of a closed Paillier task, in log order, paged (key "
        "holders, administrator)",
    )
    def report_page(
        task_id: TaskId,
        _who: ReportsReader,
        offset: Annotated[
            int, Query(ge=0, le=MAX_CLIENTS_LIMIT, description="First report (0-based).")
        ] = 0,
        limit: Annotated[
            int | None,
            Query(ge=1, le=MAX_CLIENTS_LIMIT, description="Most reports (capped to a few MiB)."),
        ] = None,
    ) -> ReportPageOut:
        return service.report_page(task_id, offset, limit)

    return router


async def _deadline_loop(service: TaskService, interval: float) -> None:
    """Close tasks whose deadline passed, every ``interval`` seconds, forever."""
    while True:
        try:
            closed = await run_in_threadpool(service.close_due_tasks)
            if closed:
                logger.info("closed %d task(s) at their deadline", closed)
        except Exception:
            logger.exception("deadline check failed; will retry")
        await asyncio.sleep(interval)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the aggregation service application.

    Args:
        settings: validated settings (admin token, database URL, limits).
        engine: an engine to use instead of ``make_engine(settings.db_url)``.
        clock: the current time as an aware UTC datetime (tests may inject one).

    Returns:
        The FastAPI application. Its lifespan checks the database's schema revision
        (``DatabaseNotMigratedError`` if ``smpcloud db upgrade`` is due), creates the worker pool
        (``settings.workers`` processes, started on first use), runs the deadline loop, and at
        shutdown stops the loop and the pool and disposes of the engine.
    """
    db = engine or make_engine(
        settings.db_url, busy_timeout_seconds=settings.db_busy_timeout_seconds
    )
    service = TaskService(db, settings, clock=clock)
    pool_ready = False  # for /readyz: the lifespan started the pool and is not shutting down

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        nonlocal pool_ready
        await run_in_threadpool(check_migrated, db)  # smpcloud db upgrade made the schema
        service.start_pool()
        pool_ready = True
        loop = asyncio.create_task(_deadline_loop(service, settings.deadline_poll_seconds))
        try:
            yield
        finally:
            pool_ready = False
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            # Waits for work running on the workers; queued work is cancelled.
            await run_in_threadpool(service.close_pool)
            if engine is None:
                db.dispose()

    # /docs and /redoc with Swagger UI's and ReDoc's files served from this server (the
    # fastapi-offline package ships them), not from a CDN: they work offline.
    app = FastAPIOffline(
        title="smpcloud aggregation service",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS_PATH,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)

    def authenticate_first(token: str | None, task_id: str | None) -> Principal:
        # Before a large body is read: any role of the task here; the route checks the role.
        allowed = ANY_ROLE if task_id is not None else ADMIN
        return service.authenticate(token, task_id, allowed, "send a large request body")

    # Added after the size limit, so it runs before it: refuses before the size limit's
    # buffering reads a byte (the request-id layer outside it reads no body).
    app.add_middleware(AuthenticateFirstMiddleware, authenticate=authenticate_first)
    # Outermost: every request, refused ones included, gets its id, its metrics and its log.
    app.add_middleware(
        RequestContextMiddleware, on_done=_request_done(settings.log_format == "json")
    )
    install_problem_handlers(app)

    @app.get("/healthz", tags=["health"], summary="Liveness check (no authentication)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness check (no authentication): database, schema, worker pool",
        description=_READYZ_DESCRIPTION,
        responses={503: {"model": ProblemOut, "content": {PROBLEM_MEDIA_TYPE: {}}}},
    )
    async def readyz() -> Response:
        missing = await run_in_threadpool(missing_for_readiness, db, pool_ready=pool_ready)
        if missing:
            return problem_response(
                503,
                NOT_READY_SLUG,
                "Not ready",
                "not ready: " + "; ".join(missing),
                extra={"missing": missing},
                headers={"Cache-Control": "no-store"},
            )
        return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (administrator, unless the server runs with --metrics public)",
        description=_METRICS_DESCRIPTION,
        response_class=Response,
        responses={200: {"content": {METRICS_MEDIA_TYPE: {}}}, **_problem(401, 403)},
    )
    async def metrics(credentials: BearerToken) -> Response:
        if settings.metrics != "public":
            service.authenticate(_token(credentials), None, ADMIN, "read the metrics")
        body = await run_in_threadpool(render_metrics, db)
        return Response(body, media_type=METRICS_MEDIA_TYPE, headers={"Cache-Control": "no-store"})

    @app.get(
        "/",
        tags=["health"],
        summary="What this server is, and where its API and documentation are",
    )
    async def index(request: Request) -> dict[str, Any]:
        root = str(request.scope.get("root_path", ""))
        return {
            "service": app.title,
            "version": __version__,
            "links": {name: root + path for name, path in _INDEX_LINKS.items()},
        }

    app.include_router(build_router(service))
    app.state.service = service
    return app


__all__ = ["DOCS_ASSETS_PATH", "build_router", "create_app"]
