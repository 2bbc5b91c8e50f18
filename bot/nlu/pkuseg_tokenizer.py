"""Rasa tokenizer component: pkuseg word segmentation with the knowledge base's user
dictionary (modelled on rasa/nlu/tokenizers/jieba_tokenizer.py).

Besides Rasa's internal tokens it puts the word list into the parse result under
``tokens_zh``, so the action server can run retrieval without loading pkuseg itself.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlp.normalize import normalize_text, scoring_text
from bot.nlp.segmenter import Segmenter, user_dict_path

logger = logging.getLogger(__name__)
OUTPUT_KEY = "tokens_zh"          # words of the question for retrieval (fillers removed)
SCORING_KEY = "text_scoring"      # the question without greetings / fillers (bot.nlp.normalize)
DICT_FILE = "user_dict.txt"
EMPTY_TOKEN = "__empty__"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class PkusegTokenizer(Tokenizer):
    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["zh"]

    @staticmethod
    def required_packages() -> List[Text]:
        return ["pkuseg"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "user_dict_path": None,  # default: build/pkuseg_user_dict.txt from the KB build
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 words: Optional[List[str]] = None) -> None:
        super().__init__(config)
        self._model_storage = model_storage
        self._resource = resource
        self._words = words or []
        self._segmenter = Segmenter(self._words)

    @classmethod
    def _read_words(cls, path: Path) -> List[str]:
        if path.exists():
            return [w for w in path.read_text(encoding="utf-8").split("\n") if w.strip()]
        logger.warning("pkuseg user dictionary %s not found; run python -m bot.kb build", path)
        return []

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "PkusegTokenizer":
        path = Path(config.get("user_dict_path") or user_dict_path())
        return cls(config, model_storage, resource, cls._read_words(path))

    def train(self, training_data: TrainingData) -> Resource:
        with self._model_storage.write_to(self._resource) as directory:
            (Path(directory) / DICT_FILE).write_text("\n".join(self._words), encoding="utf-8")
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "PkusegTokenizer":
        try:
            with model_storage.read_from(resource) as directory:
                words = cls._read_words(Path(directory) / DICT_FILE)
        except ValueError:
            words = cls._read_words(Path(config.get("user_dict_path") or user_dict_path()))
        tokenizer = cls(config, model_storage, resource, words)
        tokenizer._segmenter.words("预热")  # load the model now, not on the first message
        return tokenizer

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        text = message.get(attribute) or ""
        tokens = [Token(word, start) for word, start in self._segmenter.tokenize(text)]
        if not tokens:
            # A blank message would leave the intent classifier without features (it raises
            # and the message is lost); a placeholder token lets it fall through to nlu_fallback.
            tokens = [Token(EMPTY_TOKEN, 0, 0)]
        return self._apply_token_pattern(tokens)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            text = example.get(TEXT)
            # the same normalisation as at serving time; annotated examples keep their offsets
            if isinstance(text, str) and text and not example.get(ENTITIES):
                example.set(TEXT, normalize_text(text) or text)
        return super().process_training_data(training_data)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            raw = message.get(TEXT)
            if isinstance(raw, str) and raw:
                # Rasa keeps the raw text in the tracker (UserUttered.text); everything after
                # this step (features, entities, the actions' retrieval) reads the normalised text.
                message.set(TEXT, normalize_text(raw))
        messages = super().process(messages)
        for message in messages:
            text = message.get(TEXT) or ""
            tokens = [t.text for t in (message.get("text_tokens") or []) if t.text != EMPTY_TOKEN]
            scoring = scoring_text(text) if text else ""
            if scoring != text:
                tokens = self._segmenter.words(scoring) if scoring else []
            message.set(SCORING_KEY, scoring, add_to_output=True)
            message.set(OUTPUT_KEY, tokens, add_to_output=True)
        return messages
