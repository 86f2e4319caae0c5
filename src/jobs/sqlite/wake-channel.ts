/**
 * Cross-process wake-ups for the embedded engine: every process sharing one jobs file runs on this
 * machine, so a process that waits for work listens on a loopback UDP port and registers it in the
 * file (`wake_ports`); a process that makes work ready (an enqueue, a redrive, a resume, a job handed
 * back) sends one empty datagram to every registered port after its commit. A datagram costs a few µs
 * and needs no connection; one that is lost (or a port that is gone) costs at most the data_version
 * poll (JOBS_POLL_MS), which stays as the safety net.
 *
 * A cancel request for an active job travels the same way (`c:<job id>`), so the worker running it, in
 * whichever process, aborts it at once; a lost one is found by that worker's next heartbeat (1 s).
 */
import dgram from 'node:dgram';
import type SQLite from 'better-sqlite3';

const SCHEMA = `create table if not exists wake_ports (port integer primary key, pid integer not null, since integer not null)`;
/** How long the list of ports is reused before it is read again, ms. */
const PORTS_TTL_MS = 500;
const EMPTY = Buffer.alloc(0);
const CANCEL = 'c:';

export class WakeChannel {
  private socket: dgram.Socket | undefined;
  private port: number | undefined;
  private listening: Promise<void> | undefined;
  private ports: number[] = [];
  private portsAt = -Infinity;
  private sender: dgram.Socket | undefined;
  private pending = false;
  private closed = false;
  private readonly stmts;

  constructor(
    private readonly db: SQLite.Database,
    private readonly onWake: () => void,
    private readonly onCancel: (jobId: string) => void,
    private readonly onError: (err: Error, what: string) => void,
    /** Runs a write to the shared file (the queue's lock wait). */
    private readonly write: <T>(fn: () => T) => T,
  ) {
    db.exec(SCHEMA);
    this.stmts = {
      ports: db.prepare<[], { port: number }>(`select port from wake_ports`),
      add: db.prepare<[number, number, number]>(
        `insert or replace into wake_ports (port, pid, since) values (?, ?, ?)`,
      ),
      remove: db.prepare<[number]>(`delete from wake_ports where port = ?`),
      removePid: db.prepare<[number]>(`delete from wake_ports where pid = ?`),
    };
  }

  /** Starts listening (once): this process is then woken by the others' notifications. */
  listen(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.listening ??= new Promise<void>((resolve) => {
      const socket = dgram.createSocket('udp4');
      socket.on('message', (msg) => {
        if (msg.length === 0) return this.onWake();
        const text = msg.toString();
        if (text.startsWith(CANCEL)) this.onCancel(text.slice(CANCEL.length));
      });
      socket.on('error', (err) => this.onError(err, 'wake-up socket'));
      socket.bind(0, '127.0.0.1', () => {
        if (this.closed) {
          socket.close();
          return resolve();
        }
        this.socket = socket;
        socket.unref();
        const port = socket.address().port;
        this.port = port;
        this.write(() => this.stmts.add.run(port, process.pid, Date.now()));
        this.portsAt = -Infinity;
        resolve();
      });
    });
    return this.listening;
  }

  /** Wakes the other listening processes, once per turn however many calls (after the caller's commit). */
  notify(): void {
    if (this.closed || this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      if (this.closed) return;
      const now = performance.now();
      if (now - this.portsAt >= PORTS_TTL_MS) {
        this.ports = this.stmts.ports.all().map((r) => r.port);
        this.portsAt = now;
      }
      for (const port of this.ports) {
        if (port === this.port) continue;
        this.senderSocket().send(EMPTY, port, '127.0.0.1');
      }
    });
  }

  /** Tells the other listening processes that `jobId` was asked to cancel (after the caller's commit). */
  notifyCancel(jobId: string): void {
    if (this.closed) return;
    const msg = Buffer.from(`${CANCEL}${jobId}`);
    for (const port of this.stmts.ports.all().map((r) => r.port)) {
      if (port === this.port) continue;
      this.senderSocket().send(msg, port, '127.0.0.1');
    }
  }

  private senderSocket(): dgram.Socket {
    if (!this.sender) {
      this.sender = dgram.createSocket('udp4');
      this.sender.on('error', (err) => this.onError(err, 'wake-up sender'));
      this.sender.unref();
    }
    return this.sender;
  }

  /** Forgets the ports of a process that is gone. */
  forgetPid(pid: number): void {
    this.write(() => this.stmts.removePid.run(pid));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const port = this.port;
    if (port !== undefined) this.write(() => this.stmts.remove.run(port));
    this.socket?.close();
    this.sender?.close();
  }
}
