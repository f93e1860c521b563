"""The records and the structures every layer uses: constants, errors,
input checks, the task record, the look-up store, the ready queue and the
timer."""
