// What a memory file is to its holders (mem-file.ts has the backends).
export interface MemFile {
  /** The file's name: a capability (whoever knows it can map the file), handed to its owner only. */
  readonly name: string;
  /** The mapping: `length` bytes, shared with every other holder of the file. */
  readonly bytes: Buffer;
}

/** Where the host kernel's memory files come from. */
export interface MemFileBackend {
  readonly kind: 'shm' | 'memory';
  /** A new zero-filled file of `length` bytes, mapped; ENOMEM when there is no room for it. */
  create(length: number): MemFile;
  /** Removes the name (unlink(2)): nobody can map the file any more; existing mappings stay valid. */
  unlink(name: string): void;
}
