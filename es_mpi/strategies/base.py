"""The strategy interface (DESIGN.md contract 4): pure numpy, no MPI, exact state round-trip.

Every rank builds the same strategy and calls the same methods with the same arguments,
so every rank holds the same bytes. The trainer only needs:

- `population`: members per iteration; `group`: consecutive members that one rank must
  evaluate together (2 for a mirrored pair), `population % group == 0`.
- `ask(t)`: prepare iteration t's compact member descriptors (noise offsets, signs...).
- `member_params(i)`: expand member i of the current ask into float32 parameters.
- `tell(fitness_n)`: the full fitness array in global member order; updates the state
  with the same float operations on every rank. Returns a dict of scalar metrics.
- `center()`: the parameters to evaluate and checkpoint.
- `state_dict()` / `load_state_dict()`: a flat dict of numpy arrays and scalars.
"""


class Strategy:
    name = "base"
    population = 0
    group = 1

    def ask(self, iteration):
        raise NotImplementedError

    def member_params(self, member):
        raise NotImplementedError

    def tell(self, fitness_n):
        raise NotImplementedError

    def center(self):
        raise NotImplementedError

    def state_dict(self):
        raise NotImplementedError

    def load_state_dict(self, state):
        raise NotImplementedError
