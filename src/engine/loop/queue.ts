/** FIFO with O(1) push/shift; Array#shift is O(n) once V8 leaves its fast path. */
export class Queue<T> {
  private items: Array<T | undefined> = []
  private head = 0

  get length (): number { return this.items.length - this.head }

  push (item: T): void { this.items.push(item) }

  shift (): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Removes and returns everything queued. */
  drain (): T[] {
    const rest = this.items.slice(this.head) as T[]
    this.items = []
    this.head = 0
    return rest
  }
}
