// Types for farol-bridge-client (index.js). Protocol: docs/bridge-protocol.md.
import { EventEmitter } from 'node:events';
import { ChildProcess } from 'node:child_process';

export type Message = { role: 'system' | 'user' | 'assistant'; content: string };
export type PromptOrMessages = string | Message[];

export interface RestartOptions { minDelayMs?: number; maxDelayMs?: number; maxRestarts?: number }

export interface BridgeOptions {
  /** Path of the farol-bridge executable (never run through a shell). */
  command: string;
  args?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Per-request timeout; 0 turns it off (a `signal` can still cancel). */
  timeoutMs?: number;
  startTimeoutMs?: number;
  restart?: boolean | RestartOptions;
}

export interface RequestOptions {
  timeoutMs?: number;
  /** Cancels the request (and its generation); AbortSignal.timeout(ms) works. */
  signal?: AbortSignal;
  id?: string | number;
  onToken?: (text: string) => void;
}

export interface GenerateOptions extends RequestOptions {
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  repetition_penalty?: number;
  stop?: string[];
  seed?: number;
}

export interface GenerateReply {
  v: 1;
  id: string | number;
  status: 'ok';
  response: string;
  finish_reason: 'stop' | 'length';
  usage: { prompt_tokens: number; completion_tokens: number };
  timing: { prompt_tps: number; generation_tps: number; seconds: number; queue_seconds: number;
    batched: boolean };
}

export type BridgeErrorCode = 'bad_json' | 'bad_request' | 'unknown_op' | 'too_long'
  | 'duplicate_id' | 'cancelled' | 'shutting_down' | 'internal' | 'timeout' | 'aborted'
  | 'exited' | 'start_failed' | 'closed' | 'down' | 'rejected';

export class BridgeError extends Error {
  code: BridgeErrorCode;
  id?: string | number;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  stderr?: string;
  cause?: unknown;
}

export interface BridgeEvents {
  stderr: [line: string];
  exit: [info: { code: number | null; signal: NodeJS.Signals | null; error: BridgeError }];
  restart: [info: { attempt: number; delayMs: number }];
  ignored: [line: string];
}

export class Bridge extends EventEmitter {
  constructor(options: BridgeOptions);
  readonly pid: number | null;
  readonly child: ChildProcess | null;
  start(): Promise<object>;
  request(op: string, fields?: object, options?: RequestOptions): Promise<any>;
  ask(input: PromptOrMessages, options?: GenerateOptions): Promise<GenerateReply>;
  stream(input: PromptOrMessages, options?: GenerateOptions): AsyncGenerator<string, void>;
  ping(options?: RequestOptions): Promise<{ response: 'pong' }>;
  info(options?: RequestOptions): Promise<object>;
  close(options?: { graceMs?: number }): Promise<void>;
  on<K extends keyof BridgeEvents>(event: K, listener: (...args: BridgeEvents[K]) => void): this;
  once<K extends keyof BridgeEvents>(event: K, listener: (...args: BridgeEvents[K]) => void): this;
  off<K extends keyof BridgeEvents>(event: K, listener: (...args: BridgeEvents[K]) => void): this;
}

export function createBridge(options: BridgeOptions): Bridge;

export type Answer = { text: string; source: 'local' | 'fallback'; error: BridgeError | Error | null };

export function withFallback(
  bridge: Bridge,
  fallbackFn: (input: PromptOrMessages, error: Error | null) => Promise<string>,
  options?: { accept?: (text: string) => boolean },
): (input: PromptOrMessages, options?: GenerateOptions) => Promise<Answer>;

export function routeByKeywords<A extends unknown[], R>(
  keywords: string[],
  local: (input: PromptOrMessages, ...rest: A) => Promise<R>,
  other: (input: PromptOrMessages, ...rest: A) => Promise<R>,
): (input: PromptOrMessages, ...rest: A) => Promise<R>;

export function userText(input: PromptOrMessages): string;
