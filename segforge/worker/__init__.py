"""The background worker: jobs run in another process (local or on a GPU server) so the
GUI never freezes. :class:`WorkerClient` is the entry point for module Logics."""
from .client import JobResult, JobStatus, RemoteJob, WorkerClient, shared_worker
from .module_job import ModuleJob, WorkerLogic
from .protocol import PROTOCOL_VERSION
from .thread_job import ThreadJob

__all__ = ["JobResult", "JobStatus", "ModuleJob", "PROTOCOL_VERSION", "RemoteJob", "WorkerClient", "WorkerLogic",
           "ThreadJob", "shared_worker"]
