import { errnoOf, PAGE } from '../kernel.testing';
import { Tx } from '../fault-injection';
import { FrameBytes, firstDifference, PhysicalMemory, SECTION_FRAMES } from './physical-memory';

const bytes = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff));

describe('firstDifference (memcmp, then a binary search of memcmps)', () => {
  it('is -1 for equal ranges and the offset of the first differing byte otherwise, at any position', () => {
    const a = bytes(PAGE, 1);
    expect(firstDifference(a, 0, Buffer.from(a), 0, PAGE)).toBe(-1);
    for (const at of [0, 1, 2047, 2048, PAGE - 1]) {
      const b = Buffer.from(a);
      b[at] ^= 0x40;
      if (at + 7 < PAGE) b[at + 7] ^= 0x01; // a later difference does not hide the first
      expect(firstDifference(a, 0, b, 0, PAGE)).toBe(at);
    }
    // Offsets into both buffers: the answer is relative to the compared range.
    const c = Buffer.concat([Buffer.alloc(5), a]);
    c[5 + 300] ^= 1;
    expect(firstDifference(a, 100, c, 105, 500)).toBe(200);
    expect(firstDifference(a, 100, c, 105, 200)).toBe(-1);
  });
});

describe('PhysicalMemory frame-to-frame operations (the device data plane)', () => {
  const setup = () => {
    const mem = new PhysicalMemory(1);
    const [a, b] = [mem.allocFrameNow() * PAGE, mem.allocFrameNow() * PAGE];
    return { mem, a, b };
  };

  it('copy moves bytes between frames and within one (overlapping: memmove), never-written source reads as zero', () => {
    const { mem, a, b } = setup();
    const data = bytes(256, 7);
    mem.write(a + 100, data);
    mem.copy(a + 100, b + 10, 256);
    expect(mem.read(b + 10, 256)).toEqual(data);
    mem.copy(a + 100, a + 164, 256); // forward overlap
    expect(mem.read(a + 164, 256)).toEqual(data);
    mem.copy(b, a, 64); // b's first 10 bytes were never written: zeros
    expect(mem.read(a, 10)).toEqual(Buffer.alloc(10));
  });

  it('fill repeats the pattern from its first byte; compare finds the first difference or -1', () => {
    const { mem, a, b } = setup();
    const pattern = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    mem.fill(a + 3, 21, pattern);
    expect([...mem.read(a + 3, 21)]).toEqual(Array.from({ length: 21 }, (_, i) => pattern[i % 8]));
    expect(mem.read(a, 3)).toEqual(Buffer.alloc(3));
    expect(mem.compare(a, b, PAGE)).toBe(3); // b never written: zeros
    mem.copy(a, b, PAGE);
    expect(mem.compare(a, b, PAGE)).toBe(-1);
    mem.writeU32(b + 20, 0xdeadbeef);
    expect(mem.readU32(b + 20)).toBe(0xdeadbeef);
    expect(mem.compare(a, b, PAGE)).toBe(20);
  });

  it('writeFrom copies part of a buffer; a range crossing a frame is a bug (RangeError), a free frame EFAULT', () => {
    const { mem, a, b } = setup();
    const rec = bytes(32, 9);
    mem.writeFrom(b + 32, rec, 8, 16);
    expect(mem.read(b + 32, 16)).toEqual(rec.subarray(8, 24));
    expect(() => mem.copy(a + PAGE - 8, b, 16)).toThrow(RangeError);
    expect(() => mem.fill(b + PAGE - 4, 8, Buffer.alloc(8))).toThrow(RangeError);
    const free = b + PAGE; // the frame after the two allocated ones
    expect(errnoOf(() => mem.copy(a, free, 8))).toBe('EFAULT');
    expect(errnoOf(() => mem.writeU32(free, 1))).toBe('EFAULT');
    expect(mem.read(a, 8)).toEqual(Buffer.alloc(8)); // nothing moved by the refused calls
  });
  it('readPte is readU32 of both halves: zeros in a never-written frame, the same errors out of range', () => {
    const { mem, a, b } = setup();
    const out = new Uint32Array(2);
    mem.readPte(b + 16, out);
    expect([...out]).toEqual([0, 0]);
    mem.write(a + 8, Buffer.from([0x67, 0x10, 0x00, 0x80, 0xff, 0xff, 0x0f, 0x00]));
    mem.readPte(a + 8, out);
    expect([...out]).toEqual([mem.readU32(a + 8), mem.readU32(a + 12)]);
    expect([...out]).toEqual([0x80001067, 0x000fffff]);
    mem.readPte(a + 4, out); // not 8-aligned: the two reads, one by one
    expect([...out]).toEqual([mem.readU32(a + 4), mem.readU32(a + 8)]);
    expect(errnoOf(() => mem.readPte(0, out))).toBe('EFAULT');
    expect(errnoOf(() => mem.readPte(mem.totalFrames * PAGE + PAGE - 4, out))).toBe('EFAULT');
  });
});

describe('FrameBytes (each frame a page of a 32 MiB section)', () => {
  it('lays the frames of a section 4 KiB apart in one buffer, as real frames lie, and a new section in another', () => {
    const frames = new FrameBytes(SECTION_FRAMES + 2);
    const [a, b, c] = [frames.fresh(3), frames.fresh(1), frames.fresh(SECTION_FRAMES + 1)];
    expect([a.length, b.length, c.length]).toEqual([PAGE, PAGE, PAGE]);
    expect(a.buffer).toBe(b.buffer);
    expect(a.byteOffset - b.byteOffset).toBe(2 * PAGE);
    expect(c.buffer).not.toBe(a.buffer);
    expect(c.byteOffset).toBe(PAGE);
    expect(frames.get(3)).toBe(a);
    // A memory file's page stands in for the frame's own bytes until the frame goes.
    const filePage = Buffer.alloc(PAGE, 7);
    frames.set(2, filePage);
    expect(frames.get(2)).toBe(filePage);
    frames.delete(2);
    expect(frames.get(2)).toBeUndefined();
    expect(filePage[0]).toBe(7); // the file keeps its bytes
  });

  it('zeroes a page that an earlier frame of the same number wrote', () => {
    const frames = new FrameBytes(8);
    frames.fresh(5).fill(0xaa);
    frames.delete(5);
    expect(frames.fresh(5)).toEqual(Buffer.alloc(PAGE));
  });

  it('in PhysicalMemory: a frame freed and allocated again reads as zero beyond what its new owner wrote', () => {
    const mem = new PhysicalMemory(1);
    const pfn = mem.allocFrameNow();
    mem.write(pfn * PAGE, Buffer.alloc(PAGE, 0x5c));
    mem.freeFrame(pfn);
    expect(mem.allocFrameNow()).toBe(pfn);
    mem.writeU32(pfn * PAGE + 8, 1);
    const expected = Buffer.alloc(PAGE);
    expected[8] = 1;
    expect(mem.read(pfn * PAGE, PAGE)).toEqual(expected);
  });
});

describe('PhysicalMemory pins', () => {
  it('lists [pfn, count] by frame number, one frozen answer until a count changes (a rollback is a change too)', () => {
    const mem = new PhysicalMemory(1);
    const [a, b] = [mem.allocFrameNow(), mem.allocFrameNow()];
    const tx = new Tx();
    mem.pin(tx, b);
    mem.pin(tx, a);
    mem.pin(tx, b);
    tx.commit();
    const first = mem.pinnedFrames();
    expect(first).toEqual([[a, 1], [b, 2]]);
    expect(Object.isFrozen(first) && first.every((pair) => Object.isFrozen(pair))).toBe(true);
    expect(mem.pinnedFrames()).toBe(first);

    const undone = new Tx();
    mem.unpin(undone, b);
    const during = mem.pinnedFrames();
    expect(during).toEqual([[a, 1], [b, 1]]);
    undone.rollback();
    const after = mem.pinnedFrames();
    expect(after).not.toBe(during);
    expect(after).toEqual(first);
    // Unpinned to 0, a frame leaves the list; one more unpin of it is refused (RangeError) and changes nothing.
    const tx2 = new Tx();
    mem.unpin(tx2, a);
    expect(() => mem.unpin(tx2, a)).toThrow(RangeError);
    tx2.commit();
    expect(mem.pinnedFrames()).toEqual([[b, 2]]);
  });
});
