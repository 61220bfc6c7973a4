"""A small controller: widen while the finished branches disagree, stop when they agree.

    autotts eval --controller examples/my_controller.py --betas 0,0.5,1 --out out/mine
"""

from autotts_gym.voting import vote


class ProbeAndVote:
    def __init__(self, beta: float):
        # every hyperparameter is a deterministic function of the one knob beta
        self.width = 4 + round(28 * beta)  # branches opened at most
        self.confidence = 0.80 + 0.15 * beta  # stop once the vote is this sure

    def solve(self, session):
        finals = []
        live = []
        for _ in range(2):
            opened = session.open()
            if opened is None:
                break
            live.append(opened[1])
        while live:
            for branch in list(live):
                answer, finished = session.advance(branch)
                if finished:
                    finals.append(answer)
                    live.remove(branch)
            winner, conf = vote(finals)
            if len(finals) >= 2 and conf >= self.confidence:
                return winner
            if session.n_opened < self.width and len(live) < 2:
                opened = session.open()
                if opened is not None:
                    live.append(opened[1])
        winner, _ = vote(finals)
        return winner


def make_controller(beta: float) -> ProbeAndVote:
    return ProbeAndVote(beta)
