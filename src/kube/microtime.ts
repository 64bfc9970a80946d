/**
 * metav1.MicroTime on the wire: RFC 3339 with six fractional digits, which Lease and Event
 * times require (a Date's three are rejected). Structurally a client-node V1MicroTime.
 */
export class MicroTime extends Date {
  override toISOString(): string {
    return super.toISOString().replace(/Z$/, '000Z');
  }
}
