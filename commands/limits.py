"""The limits of `carbon-ledger serve`, each named once (docs/security.md lists them with what happens past each)."""

MAX_BODY_BYTES = 64 * 1024  # one command: the import's line limit
MAX_BATCH_BYTES = 16 * 1024 * 1024  # a batch of JSON lines
MAX_BATCH_LINES = 10_000  # commands in one batch
GROUP_MAX_COMMANDS = 500  # commands gathered into one transaction at most
WRITER_LEASE_S = 0.05  # the writer holds the store's writer lock over consecutive groups this long at most
MAX_REQUESTS_IN_FLIGHT = 500  # requests being answered at once; beyond, 503 server_busy (with Retry-After)
MAX_CONNECTIONS = 1000  # open connections (uvicorn's limit_concurrency); beyond, uvicorn's own plain-text 503
BACKLOG = 2048  # connections waiting to be accepted
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
BODY_READ_S = 10  # a request's body arrives within this from its first read, or 408 (a trickling client)
COMMAND_WAIT_S = 30  # a command waits this long for the writer, then 503 store_busy (send it again, same id)
SHUTDOWN_S = 10  # on SIGTERM, requests in progress get this long to finish
