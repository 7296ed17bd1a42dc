import { formatTraceparent, outboundTraceHeaders, parseTraceparent, runInTrace } from './trace';

describe('W3C traceparent', () => {
  it('parses a valid header and formats it back', () => {
    const h = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(parseTraceparent(h)).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7' });
    expect(formatTraceparent('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7')).toBe(h);
  });

  it.each([
    ['absent', undefined],
    ['garbage', 'hello'],
    ['all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['all-zero parent id', `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`],
    ['version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
    ['short trace id', '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01'],
  ])('rejects %s (a new trace starts instead)', (_name, header) => {
    expect(parseTraceparent(header)).toBeNull();
  });

  it('sends the current span as the parent of an outbound call', () => {
    const headers = runInTrace({ traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), caller: null }, () => outboundTraceHeaders('vmm', 9));
    expect(headers).toEqual({ traceparent: `00-${'c'.repeat(32)}-${'d'.repeat(16)}-01`, 'x-caller': 'vmm', 'x-lamport': '9' });
  });
});
