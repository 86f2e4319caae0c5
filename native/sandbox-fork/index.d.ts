/**
 * Forks this process. Returns the child's pid in the parent and 0 in the child.
 * In the child, before it returns: the event loop is re-created (uv_loop_fork),
 * the child is set to get SIGKILL when the parent dies, and `severFd` (the
 * parent's IPC channel) is replaced by a socket whose peer is closed, so that
 * nothing the child does reaches the parent's peer on it. Throws on failure.
 */
export function fork(severFd: number): number;
/** The pids of children that ended since the last call, with how they ended (waitpid WNOHANG). */
export function reap(): Array<{ pid: number; code: number | null; signal: number | null }>;
/** getpid(2): the real pid (Node caches process.pid at start-up). */
export function getpid(): number;
/**
 * _exit(2): ends the process at once. A forked child must end so: Node's own
 * exit joins threads (libuv's thread pool, V8's workers) that exist only in
 * the parent, and crashes on them.
 */
export function exit(code: number): never;
