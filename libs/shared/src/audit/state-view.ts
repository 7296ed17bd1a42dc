/** An app's object graph for the operator (`/v1/audit/state`, the /ui state view): each app sets its reader at start. */
export class StateView {
  private reader: () => unknown = () => ({});

  set(reader: () => unknown): void {
    this.reader = reader;
  }

  read(): unknown {
    return this.reader();
  }
}
