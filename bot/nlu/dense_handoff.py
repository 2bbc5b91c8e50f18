"""Requests for a person recognised by meaning, not only by their words.

The intent classifier reads character n-grams, and the arbiter's patterns
(bot/nlu/retrieval_arbiter.py ``HUMAN_REQUEST_RE``…) read the shapes someone wrote down; each new
writer finds shapes neither covers (揾个职员倾下偈, "Is anyone there? Like an
actual human being?"). This component reads the question's sentence embedding (the same
multilingual e5 vector the retrieval uses, bot/retrieval/dense.py) with a logistic regression
trained at ``rasa train`` on the NLU examples: the ``handoff_intents`` against every other intent.
It only scores; the arbiter decides (``HANDOFF_P_KEY`` in the parse data).

Bounded work: a message is scored only when the classifier did not already find a request for a
person and it either came out as small talk / out of scope / fallback, or names a person
(``PERSON_CUE_RE``); its vector is computed off the event loop like the retrieval's
(bot/nlu/dense_prefetch.py) and is the one the retrieval reads too (the same scoring text).
With ``ZWZX_DENSE=off`` nothing is trained or scored.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlp.normalize import scoring_text

logger = logging.getLogger(__name__)

HANDOFF_P_KEY = "handoff_p"   # the probability, in the parse data, that the message asks for a person
WEIGHTS_FILE = "handoff_lr.npy"
# intents the classifier's own reading leaves to this one (it is unsure of them, or they carry no topic)
SCORED_INTENTS = {"greet", "goodbye", "thank", "ask_capabilities", "out_of_scope", "nlu_fallback",
                  "affirm", "deny", "cancel"}
# a question about the assistant ("跟我聊天的是真人还是机器") is near a request for a person in meaning,
# but asks whether it is one; a callback request and a complaint have their own flows
NOT_SCORED = {"bot_identity", "complain", "request_callback"}
# a person named in any other message (人民/个人/法人 are not people one talks to)
PERSON_CUE_RE = re.compile(
    r"(?<![个法])人(?!民|大)|员|客服|主管|上级|领导|经理|老师|同志|同仁|专员|窗口|值班|"
    r"\b(?:human|person|people|someone|somebody|anyone|anybody|staff|agent|operator|officer|official|"
    r"representative|supervisor|manager|whoever|employee)\b", re.I)


def _scoring(message: Message) -> str:
    return message.get("text_scoring") or scoring_text(message.get(TEXT) or "")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class DenseHandoffScorer(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"handoff_intents": ["request_human", "request_callback"], "C": 100.0}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 weights: Optional[np.ndarray] = None) -> None:
        self._config = {**self.get_default_config(), **(config or {})}
        self._model_storage = model_storage
        self._resource = resource
        self._weights = weights  # coef (384) then intercept

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "DenseHandoffScorer":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        from bot.retrieval.dense import enabled, embed_many

        examples = [(e.get(INTENT), _scoring(e)) for e in training_data.intent_examples if e.get(TEXT)]
        wanted = set(self._config["handoff_intents"])
        labels = np.array([intent in wanted for intent, _ in examples])
        if not enabled() or labels.sum() < 5 or (~labels).sum() < 5:
            logger.info("dense handoff scorer not trained (dense off or too few examples)")
            return self._resource
        from sklearn.linear_model import LogisticRegression

        vectors = embed_many([text for _, text in examples])
        clf = LogisticRegression(C=float(self._config["C"]), max_iter=3000, class_weight="balanced")
        clf.fit(vectors, labels)
        self._weights = np.concatenate([clf.coef_[0], clf.intercept_]).astype(np.float32)
        with self._model_storage.write_to(self._resource) as directory:
            np.save(Path(directory) / WEIGHTS_FILE, self._weights)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "DenseHandoffScorer":
        weights = None
        try:
            with model_storage.read_from(resource) as directory:
                path = Path(directory) / WEIGHTS_FILE
                if path.exists():
                    weights = np.load(path)
        except ValueError:  # trained with the dense model off: nothing to score with
            pass
        return cls(config, model_storage, resource, weights)

    def probability(self, vector: np.ndarray) -> float:
        z = float(np.dot(self._weights[:-1], vector) + self._weights[-1])
        return float(1.0 / (1.0 + np.exp(-z)))

    def wants_score(self, message: Message) -> bool:
        intent = (message.get(INTENT) or {}).get("name")
        if intent == "request_human":  # the meaning may confirm or doubt the classifier
            return True
        if intent in NOT_SCORED:
            return False
        text = message.get(TEXT) or ""
        return intent in SCORED_INTENTS or bool(PERSON_CUE_RE.search(text))

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        if self._weights is None:
            return messages
        from bot.nlu.dense_prefetch import want
        from bot.retrieval.dense import DEFER, cached_vector, embed_query, enabled, query_text, worth_embedding

        for message in messages:
            try:
                if not enabled() or not self.wants_score(message):
                    continue
                scoring = _scoring(message)
                if not worth_embedding(scoring):
                    continue
                vector = cached_vector(scoring)
                if vector is None:
                    if DEFER.get():  # embedded off the event loop, then parsed again
                        want(message, [query_text(scoring)])
                        continue
                    vector = embed_query(scoring)
                message.set(HANDOFF_P_KEY, round(self.probability(vector), 4), add_to_output=True)
            except Exception:  # a score is an improvement, never a reason to lose a message
                logger.exception("dense handoff score failed; the words decide")
        return messages
