"""Which new passwords signUp refuses: the wrong length, ones holding the username or the
display name, and ones zxcvbn estimates guessable. logIn never judges a password."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

from zxcvbn import zxcvbn
from zxcvbn.matching import L33T_TABLE

from pictograph.errors import BadUserInput

MIN_LENGTH = 10
MAX_LENGTH = 1024
# zxcvbn's score 3, "safely unguessable", means at least 10^8 guesses: millennia online
# at the 100 a day logIn allows per account from new addresses, about a core-year offline
# against a stolen argon2id hash at the default cost (~0.25 s each). Score 2 (10^6) would
# fall to a few core-days offline.
MIN_SCORE = 3
# A display name shorter than this is a syllable of many words ("Al", "Bo", "Ada"):
# zxcvbn still weighs it as a user input, but it does not refuse a password outright.
MIN_NAME_IN_PASSWORD = 4

# zxcvbn's cost is a dictionary pass over every substring (length squared) forwards,
# backwards, and once per combination of l33t substitutions the password's characters
# allow, which multiply: 20 distinct characters like "1|7@$(" make 736 combinations, so
# 40 such characters cost a second and 80 eleven (a known denial of service in every
# port; the Python port's own 72-character cap still allows ten seconds). So only a
# prefix is judged: at most ESTIMATED_PREFIX characters, fewer when substitutions would
# push the work past WORK_BUDGET, the work of four dictionary passes over 64 characters
# (tens of milliseconds). What an attacker must guess includes the prefix, so its
# strength is a floor under the whole password's: a long password is never accepted
# for more than its prefix is worth, only refused if its prefix is weak.
ESTIMATED_PREFIX = 64
WORK_BUDGET = 4 * ESTIMATED_PREFIX**2

# One thread, for two reasons: an estimate holds the GIL for milliseconds, which the
# event loop should not, and zxcvbn keeps the user inputs of the password it is judging
# in a module-level dictionary, so two estimates at once would see each other's.
_estimator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-estimate")


async def check_new_password(password: str, username: str, display_name: str) -> None:
    """Raises BadUserInput (field "password") saying why a new password is refused."""
    if len(password) < MIN_LENGTH:
        refuse(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        refuse(f"a password has at most {MAX_LENGTH} characters")
    folded = password.casefold()
    if username.casefold() in folded:
        refuse("a password cannot contain the username")
    name = display_name.strip().casefold()
    if len(name) >= MIN_NAME_IN_PASSWORD and name in folded:
        refuse("a password cannot contain the display name")
    user_inputs = [username, display_name, *display_name.split()]
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        _estimator, zxcvbn, estimated_prefix(password), user_inputs
    )
    if result["score"] < MIN_SCORE:
        refuse(f"that password is too easy to guess: {reason(result['feedback'])}")


def estimated_prefix(password: str) -> str:
    """The longest prefix, up to ESTIMATED_PREFIX characters, that zxcvbn judges within
    WORK_BUDGET."""
    seen: set[str] = set()
    for length, char in enumerate(password[:ESTIMATED_PREFIX], start=1):
        seen.add(char)
        if estimate_work(length, l33t_combinations(seen)) > WORK_BUDGET:
            return password[: length - 1]
    return password[:ESTIMATED_PREFIX]


def l33t_combinations(characters: Iterable[str]) -> int:
    """How many substitution tables zxcvbn's l33t matcher builds for these characters:
    one substitute per letter at a time, so the product of each letter's choices."""
    present = set(characters)
    return math.prod(
        max(1, sum(sub in present for sub in subs)) for subs in L33T_TABLE.values()
    )


def estimate_work(length: int, combinations: int) -> int:
    # Two plain passes (forwards, backwards) and one per table; zxcvbn's deduplication
    # can leave up to twice the product of tables, hence the factor.
    return (2 + 2 * combinations) * length**2


def reason(feedback: dict[str, Any]) -> str:
    """zxcvbn's warning, or its first suggestion when it has no warning."""
    said = feedback.get("warning") or next(
        iter(feedback.get("suggestions") or []), "add another word or two."
    )
    return said[:1].lower() + said[1:]


def refuse(message: str) -> NoReturn:
    raise BadUserInput(message, field="password")
