"""Strategy registry: `strategy.name` in a job file -> (settings dataclass, class)."""

from .openai_es import OpenAIES, OpenAIESSettings

STRATEGY_SETTINGS = {"openai_es": OpenAIESSettings}
STRATEGY_CLASSES = {"openai_es": OpenAIES}


def make_strategy(settings, initial_params_p, noise, seed):
    return STRATEGY_CLASSES[settings.name](settings, initial_params_p, noise, seed)
