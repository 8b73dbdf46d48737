/** Sections a stream starts reading ahead with, after opening or a seek. */
const INITIAL_SECTIONS = 2

/**
 * How many sections a stream reads ahead of the one it is in: 2 after a seek, doubling with
 * every section consumed in order up to the maximum. Resetting on a seek keeps random access
 * from paying for read-ahead it throws away.
 */
export class ReadAhead {
  readonly #max: number
  #sections: number

  constructor (maxSections: number) {
    this.#max = maxSections
    this.#sections = Math.min(INITIAL_SECTIONS, maxSections)
  }

  get sections (): number {
    return this.#sections
  }

  reset (): void {
    this.#sections = Math.min(INITIAL_SECTIONS, this.#max)
  }

  grow (): void {
    this.#sections = Math.min(this.#max, this.#sections * 2)
  }
}
