/**
 * The aging population of regularized evolution: a fixed-capacity ring buffer. There is no age
 * field: once full, each push overwrites the slot that holds the oldest member (as in AutoML-Zero's
 * `regularized_evolution.cc`), so "keep only the most recent P" is enforced by the structure.
 */
export class AgingPopulation<T> {
  private readonly slots: T[] = []
  /** The slot the next push writes; once full it holds the oldest member. */
  private next = 0

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`population capacity must be an integer ≥ 1, got ${capacity}`)
    }
  }

  get size(): number {
    return this.slots.length
  }

  /** Adds the newest member; returns the evicted oldest one when full. */
  push(member: T): T | undefined {
    if (this.slots.length < this.capacity) {
      this.slots.push(member)
      return undefined
    }
    const evicted = this.slots[this.next]
    this.slots[this.next] = member
    this.next = (this.next + 1) % this.capacity
    return evicted
  }

  /** Members from oldest to newest. */
  members(): T[] {
    return [...this.slots.slice(this.next), ...this.slots.slice(0, this.next)]
  }
}
