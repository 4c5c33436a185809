"""The article corpus: one real-world shape per article (tests/data/articles/), each read into
the expected lessons, built into emails with no markup showing, every paragraph placed."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from course.article import load_article
from course.build import CourseBuild, build_course, sample_recipient
from course.config import Settings, default_settings
from course.content import CodeBlock, Course, Image, ListBlock, Paragraph, Run, Section
from course.render import lesson_label
from course.slots import fill

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "articles"


@dataclass(frozen=True)
class Shape:
    """What one corpus article must become."""

    file: str
    title: str
    parts: tuple[tuple[str, tuple[str, ...]], ...]  # (kind, titles) per part
    notes: tuple[str, ...] = ()  # phrases the notes must hold, in order
    welcome: tuple[str, ...] = ()  # block types of the welcome, when it matters
    closing: tuple[str | None, ...] = ()  # closing section headings
    last_blocks: tuple[str, ...] = ()  # block types of the last lesson, when it matters
    dropped: tuple[tuple[int, int], ...] = ()  # source lines dropped with a note (first, last)
    extra: dict[str, object] = field(default_factory=dict)


SHAPES = [
    Shape(
        "front-matter-yaml.md",
        "7 Habits of People Who Always Seem Rested",
        (
            (
                "habit",
                (
                    "They keep the same wake-up time",
                    "They get morning light",
                    "They stop caffeine after lunch",
                    "They wind down on purpose",
                    "They keep the bedroom cool",
                    "They write tomorrow down",
                    "They nap short or not at all",
                ),
            ),
        ),
        closing=("Conclusion",),
        extra={
            "description": "Small routines, borrowed from the well rested, that fit into "
            "a busy week."
        },
    ),
    Shape(
        "front-matter-toml.md",
        "Five Mistakes New Gardeners Make",
        (
            (
                "mistake",
                (
                    "Planting everything at once",
                    "Too much shade",
                    "Watering little and often",
                    "Skipping the soil",
                    "Forgetting to label",
                ),
            ),
        ),
        closing=("Over to you",),
        extra={"description": "What goes wrong in a first vegetable bed, and how to avoid it."},
    ),
    Shape(
        "html-preamble.md",
        "Tidy Desk: 4 ways to clear your workspace",
        (
            (
                "way",
                (
                    "Start with an empty surface",
                    "Give cables one path",
                    "Keep one inbox tray",
                    "Reset at the end of the day",
                ),
            ),
        ),
        notes=(
            "image `assets/logo.png` (Tidy Desk logo) dropped",
            "dropped as parts of the web page (navigation, buttons, byline), not the article: "
            "line 34 `back to top`",
        ),
    ),
    Shape(
        "colon-numbers.txt",
        "6 Ways To Make Your Mornings Calmer",
        (
            (
                "way",
                (
                    "Lay out clothes the night before",
                    "Get up ten minutes earlier",
                    "Leave the phone in another room",
                    "Eat something simple",
                    "Step outside for a minute",
                    "Write one priority",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "hash-dash.txt",
        "Top 5 Reasons to Learn a Second Language",
        (
            (
                "reason",
                (
                    "Your memory gets a workout",
                    "Travel becomes richer",
                    "You understand your own language better",
                    "New friends",
                    "Films without subtitles",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "hash-dot.txt",
        "The 4 Best Reasons to Cycle to Work",
        (
            (
                "reason",
                (
                    "It is faster than you think",
                    "Exercise without finding time",
                    "It is cheap",
                    "You arrive awake",
                ),
            ),
        ),
    ),
    Shape(
        "unnumbered-headings.md",
        "Why Every Team Should Write Things Down",
        (
            (
                "reason",
                (
                    "Memory fades",
                    "New people catch up alone",
                    "Disagreements surface early",
                    "Time zones stop mattering",
                ),
            ),
        ),
        closing=("How to start", "Final thoughts"),
    ),
    Shape(
        "single-newlines.txt",
        "8 Signs Your Houseplant Needs a Bigger Pot",
        (
            (
                "sign",
                (
                    "Roots come out of the drainage hole",
                    "Water runs straight through",
                    "The plant dries out within a day",
                    "Growth has stopped",
                    "The pot tips over",
                    "Roots circle the surface",
                    "Salt crust on the soil",
                    "It has been two years",
                ),
            ),
        ),
        notes=("no blank lines between paragraphs: read one paragraph per line",),
    ),
    Shape(
        "all-ones.txt",
        "How to Keep a Sourdough Starter Alive",
        (
            (
                "lesson",
                (
                    "Feed it on a schedule",
                    "Use flour and water by weight",
                    "Keep it warm, not hot",
                    "Discard before you feed",
                    "Watch the rise",
                ),
            ),
        ),
        notes=("line 5: every item of this list is numbered 1 (lines 5-22)",),
    ),
    Shape(
        "three-lists.txt",
        "Running Your First 10K: Signs, Mistakes and a Plan",
        (
            (
                "sign",
                (
                    "You can run for twenty minutes",
                    "You run twice a week already",
                    "You have eight free weeks",
                ),
            ),
            (
                "mistake",
                (
                    "Running every run fast",
                    "Adding distance too quickly",
                    "Skipping rest days",
                    "New shoes on race day",
                ),
            ),
            (
                "step",
                ("Cut your mileage in half", "Lay out your kit", "Start slower than you want to"),
            ),
        ),
    ),
    Shape(
        "intro-quiz.md",
        "Is It Burnout? 5 Signs to Take Seriously",
        (
            (
                "sign",
                (
                    "You are tired after a full night's sleep",
                    "You have become cynical about work",
                    "Your concentration has gone",
                    "You are ill more often",
                    "You have withdrawn from people",
                ),
            ),
        ),
        welcome=("Paragraph", "ListBlock", "Paragraph"),
        closing=("What now?",),
    ),
    Shape(
        "intro-quiz-loose.txt",
        "Are You Ready for a Dog? 4 Things to Check First",
        (("lesson", ("Your daily schedule", "Your home", "Your household", "Your money")),),
        welcome=("Paragraph", "ListBlock", "Paragraph"),
    ),
    Shape(
        "bold-title-paragraphs.md",
        "How to Build a Habit That Lasts",
        (
            (
                "tip",
                (
                    "Build the Belief",
                    "Make It Small",
                    "Attach It to Something",
                    "Track It Where You See It",
                ),
            ),
        ),
        closing=("The bottom line",),
    ),
    Shape(
        "glued-item.txt",
        "5 Reasons to Keep a Paper Notebook",
        (
            (
                "reason",
                (
                    "No notifications",
                    "You remember more",
                    "It never runs out of battery",
                    "Sketches are easy",
                    "It is a record",
                ),
            ),
        ),
        notes=("line 14: item `3) It never runs out of battery` starts right under the paragraph",),
    ),
    Shape(
        "subheading-last-item.md",
        "3 Ways to Cut Your Food Waste",
        (("way", ("Plan the week's meals", "Store food properly", "Cook with leftovers")),),
        closing=("Final thoughts",),
        last_blocks=("Paragraph", "Heading", "Paragraph", "Heading", "Paragraph"),
    ),
    Shape(
        "single-list.txt",
        "10 Signs You Need a Holiday",
        (
            (
                "sign",
                (
                    "You count the days to the weekend on Monday",
                    "Small things make you snap",
                    "You cannot switch off",
                    "Your sleep is broken",
                    "Hobbies feel like chores",
                    "You are always ill",
                    "You have lost your sense of humour",
                    "You daydream about quitting",
                    "Your work is slipping",
                    "You cannot remember your last day off",
                ),
            ),
        ),
    ),
    Shape(
        "cp1252.txt",
        "Why Your Bread Doesn’t Rise: 4 Reasons",
        (
            (
                "reason",
                (
                    "The yeast was old",
                    "The kitchen was cold",
                    "Too much salt",
                    "It wasn’t kneaded enough",
                ),
            ),
        ),
        notes=("not UTF-8; read it as Windows-1252 (cp1252)",),
    ),
    Shape(
        "images-links.md",
        "5 Tips for Better Phone Photos",
        (
            (
                "tip",
                (
                    "Clean the lens",
                    "Use the grid",
                    "Tap to focus",
                    "Don't zoom, walk",
                    "Shoot in good light",
                ),
            ),
        ),
        notes=("line 21: image `images/grid-setting.png` (The camera settings screen) dropped",),
        welcome=("Paragraph", "Image"),
        closing=(None,),
    ),
    Shape(
        "step-noun.txt",
        "How to Change a Bike Tyre in 5 Steps",
        (
            (
                "step",
                (
                    "Take the wheel off",
                    "Lever the tyre off",
                    "Find the cause",
                    "Fit the new tube",
                    "Seat the tyre and pump",
                ),
            ),
        ),
    ),
    Shape(
        "tip-dash.txt",
        "12 Tips for Working From Home",
        (
            (
                "tip",
                (
                    "Keep office hours",
                    "Get dressed",
                    "Have a work corner",
                    "Take a real lunch break",
                    "Move every hour",
                    "Over-communicate",
                    "Use your camera sometimes",
                    "Protect your focus",
                    "Mind the light",
                    "End with a list",
                    "See people",
                    "Shut the laptop",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "bold-number-title.md",
        "Seven Mistakes That Kill a Job Interview",
        (
            (
                "mistake",
                (
                    "Arriving late",
                    "Not knowing the company",
                    "Talking too long",
                    "Criticising a past employer",
                    "No questions of your own",
                    "Forgetting the basics",
                    "No thank-you note",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "first-sentence-items.txt",
        "6 Signs a Friendship Is Worth Keeping",
        (
            (
                "sign",
                (
                    "They are happy for you",
                    "They remember the small things",
                    "Silence is comfortable",
                    "They tell you the truth",
                    "They show up",
                    "Time apart changes nothing",
                ),
            ),
        ),
    ),
    Shape(
        "nested-steps.txt",
        "3 Ways to Make Your Home Office Quieter",
        (("way", ("Soften the room", "Seal the gaps", "Add steady background sound")),),
        last_blocks=("Paragraph", "ListBlock"),
        closing=(None,),
    ),
    Shape(
        "countdown.txt",
        "Top 5 Reasons to Learn to Cook",
        (
            (
                "reason",
                (
                    "It saves money",
                    "You eat better",
                    "It calms you down",
                    "Friends come round",
                    "You never stop learning",
                ),
            ),
        ),
    ),
    Shape(
        "toc-web-copy.txt",
        "How to Write a Better Cover Letter: 4 Tips",
        (
            (
                "tip",
                (
                    "Open with the job",
                    "Show, don't list",
                    "Keep it to one page",
                    "End with a next step",
                ),
            ),
        ),
        notes=("line 5: a table of contents dropped (lines 5-9)",),
        welcome=("Paragraph",),
        dropped=((5, 9),),
        closing=(None,),
    ),
    Shape(
        "loose-list-items.md",
        "3 Ways to Learn a Song by Ear",
        (("way", ("Sing it first", "Find the bass line", "Slow it down")),),
        notes=("line 6: `Table of contents` dropped", "line 8: a table of contents dropped"),
        welcome=("Paragraph",),
        dropped=((6, 10),),
        closing=(None,),
    ),
    Shape(
        "medium-copy.txt",
        "7 Habits That Quietly Improved My Writing",
        (
            (
                "habit",
                (
                    "I write the ending first",
                    "I read every draft out loud",
                    "I cut the first paragraph",
                    "I keep a swipe file",
                    "I set a word count, not a time",
                    "I let drafts rest overnight",
                    "I publish before I feel ready",
                ),
            ),
        ),
        notes=(
            "no blank lines between paragraphs",
            "dropped as parts of the web page (navigation, buttons, byline), not the article: "
            "line 3 `Jordan Example`; line 4 `Follow`; line 5 `5 min read`; line 6 `·`; line 7 "
            "`Mar 3, 2023`; line 8 `--`; line 9 `12`; line 10 `Listen`; line 11 `Share`; line 12 "
            "`Photo by Someone Example on Unsplash`; line 30 `--`; line 31 `--`; line 32 `12`",
            "lines 33-45 dropped: from `Written by Jordan Example` on it reads as the web page's "
            "footer",
        ),
        welcome=("Paragraph", "Paragraph", "Paragraph"),
        closing=(None,),
        dropped=((33, 45),),
    ),
    Shape(
        "substack-copy.txt",
        "5 Lessons From a Year of Writing a Newsletter",
        (
            (
                "lesson",
                (
                    "Consistency matters more than any single issue, because readers come to "
                    "expect you on a certain day and notice when you are missing",
                    "Write for one reader",
                    "The subject line is half the work",
                    "Ask questions at the end",
                    "Growth is slow, then sudden",
                ),
            ),
        ),
        notes=(
            "no blank lines between paragraphs",
            "line 3 `Sam Example`; line 4 `Apr 14, 2024`; line 5 `18`; line 6 `4`; line 7 "
            "`Share`; line 9 `Subscribe now`; line 20 `Thanks for reading! Subscribe for free",
            "lines 21-22 dropped: from `Leave a comment` on",
        ),
        welcome=("Paragraph", "Paragraph"),
        dropped=((21, 22),),
    ),
    Shape(
        "wordpress-copy.txt",
        "8 Simple Ways to Drink More Water",
        (
            (
                "way",
                (
                    "Start the day with a glass",
                    "Carry a bottle you like",
                    "Flavour it naturally",
                    "Drink before every meal",
                    "Set reminders",
                    "Eat your water",
                    "Track it for a week",
                    "Swap one drink a day",
                ),
            ),
        ),
        notes=(
            "no blank lines between paragraphs",
            "line 1 `Skip to content`; line 2 `Home » Blog » Health`; line 4 `Posted on June 3, "
            "2022 by Anna Example`; line 8 `Toggle`",
            "line 7: a table of contents dropped (lines 7-16)",
            "lines 34-45 dropped: from `Share this:` on",
        ),
        welcome=("Paragraph",),
        closing=(None,),
        dropped=((7, 7), (9, 16), (34, 45)),
        extra={"disclosure": 1},
    ),
    Shape(
        "emoji-keycaps.md",
        "5 Tiny Kitchen Upgrades Under $20 🍳",
        (
            (
                "lesson",
                (
                    "A sharp paring knife",
                    "A bench scraper",
                    "An instant-read thermometer",
                    "A microplane",
                    "Good kitchen towels",
                ),
            ),
        ),
        closing=("🏁 Final thoughts",),
    ),
    Shape(
        "emoji-fire.md",
        "Productivity Tricks for Remote Developers",
        (
            (
                "trick",
                (
                    "Start with the hardest ticket",
                    "Batch your code reviews",
                    "Write tomorrow's first step tonight",
                    "Walk after standup",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "spelled-out.txt",
        "How to Repot a Houseplant in Four Steps",
        (
            (
                "step",
                (
                    "Water the plant the day before",
                    "Choose a pot one size up",
                    "Loosen the roots",
                    "Fill and firm",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "roman.md",
        "Four Rules for Better Meetings",
        (
            (
                "rule",
                (
                    "Every meeting has a written goal",
                    "Invite only the people who decide",
                    "End five minutes early",
                    "Send the decisions the same day",
                ),
            ),
        ),
    ),
    Shape(
        "dash-number.txt",
        "6 Things I Wish I Knew Before Adopting a Cat",
        (
            (
                "lesson",
                (
                    "Cats need a routine",
                    "Scratching is not bad behaviour",
                    "Two litter boxes are better than one",
                    "Play is exercise",
                    "Vets like to see them young",
                    "They choose you",
                ),
            ),
        ),
    ),
    Shape(
        "dash-title-body.txt",
        "12 Writing Tips for Busy Bloggers",
        (
            (
                "tip",
                (
                    "Relevance",
                    "Sentence length",
                    "Headings",
                    "Lists",
                    "Active voice",
                    "Cut adverbs",
                    "One idea per paragraph",
                    "Links",
                    "Images",
                    "Read it aloud",
                    "Sleep on it",
                    "Publish",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "french.txt",
        "7 astuces pour mieux dormir",
        (
            (
                "lesson",
                (
                    "Se coucher à heure fixe",
                    "Éviter les écrans le soir",
                    "Garder la chambre fraîche",
                    "Limiter le café",
                    "Dîner léger",
                    "Bouger dans la journée",
                    "Noter ses soucis",
                ),
            ),
        ),
        closing=(None,),
    ),
    Shape(
        "chinese.txt",
        "提高工作效率的五个方法",
        (
            (
                "lesson",
                (
                    "一次只做一件事",
                    "把相似的工作放在一起",
                    "每天确定三件最重要的事",
                    "定时休息",
                    "晚上准备好第二天的计划",
                ),
            ),
        ),
        welcome=("Paragraph",),
        closing=(None,),
    ),
    Shape(
        "chinese-numerals.md",
        "学习一门新语言的四个建议",
        (("lesson", ("每天坚持十五分钟", "多听多说", "用新语言记日记", "找一个语言伙伴")),),
        welcome=("Paragraph",),
    ),
    Shape(
        "hugo-shortcodes.md",
        "6 Ways to Make Your Hugo Site Load Faster",
        (
            (
                "way",
                (
                    "Resize images at build time",
                    "Minify the output",
                    "Drop the web fonts you barely use",
                    "Lazy-load embedded videos",
                    "Fingerprint your assets",
                    "Serve from a CDN",
                ),
            ),
        ),
        notes=(
            "template tags dropped (the blog's generator runs them, an email cannot): line 16 "
            "`{{< toc >}}`; line 34 `{{< notice tip >}}`; line 44 `{{< youtube abc123xyz >}}`; "
            "line 62 `{{< subscribe >}}`",
            "line 22: image `/images/resize-before-after.png` (The same photo before and after "
            "resizing: 2.4 MB and 180 KB.) dropped",
        ),
        welcome=("Paragraph",),
        closing=("Wrapping up",),
        extra={"description": "Small settings that shave seconds off every page."},
    ),
    Shape(
        "jekyll-liquid.md",
        "5 Tips for Writing Better Commit Messages",
        (
            (
                "tip",
                (
                    "Keep the subject short",
                    "Use the imperative mood",
                    "Explain why in the body",
                    "One change per commit",
                    "Reference the issue",
                ),
            ),
        ),
        notes=(
            "line 7 `{% include JB/setup %}`; line 12 `* TOC`; line 42 `{% post_url "
            "2020-11-05-linking-issues %}`; line 44 `{% include share-buttons.html %}`",
            "line 32: image `/assets/commit-body.png` (A commit with a subject and a body) dropped",
        ),
        welcome=("Paragraph",),
        dropped=((12, 12),),
        extra={"code": (2, 'git commit -m "Fix the login redirect after a password reset"')},
    ),
    Shape(
        "mdx-post.mdx",
        "4 Accessibility Checks You Can Do in Five Minutes",
        (
            (
                "lesson",
                (
                    "Tab through the page",
                    "Zoom to 200%",
                    "Check the contrast",
                    "Read the alt text",
                ),
            ),
        ),
        notes=(
            "line 6 `import { Callout } from '../../components/Callout'`; line 7 `import YouTube "
            "from '../../components/YouTube'`; line 9 `export const meta = {`",
        ),
        welcome=("Paragraph", "Paragraph"),
        dropped=((6, 11),),
    ),
    Shape(
        "awesome-readme.md",
        "Awesome Terminal Habits",
        (
            (
                "habit",
                (
                    "Search your history instead of retyping",
                    "Name your aliases after what they do",
                    "Dry-run anything destructive",
                    "Keep one scratch directory",
                    "Read the man page's examples first",
                ),
            ),
        ),
        notes=(
            "line 2: badge `Awesome` dropped: it decorates a project page",
            "line 2: badge `License: CC0` dropped",
            "line 20: `Contents` dropped with its list",
            "line 22: a table of contents dropped",
            "line 8 `Website • Contributing • License`; line 34 `⬆ back to top`; line 41 `⬆ back "
            "to top`; line 52 `⬆ back to top`; line 59 `⬆ back to top`; line 66 `⬆ back to top`",
        ),
        welcome=("Image", "Quote", "Paragraph"),
        closing=("Contributing", "License"),
        dropped=((8, 12), (20, 28)),
    ),
    Shape(
        "cp1251.txt",
        "5 советов, как лучше спать",
        (
            (
                "lesson",
                (
                    "Ложитесь в одно и то же время",
                    "Уберите телефон",
                    "Проветрите спальню",
                    "Не пейте кофе после обеда",
                    "Запишите свои мысли",
                ),
            ),
        ),
        notes=("not UTF-8; read it as cp1251.",),
        extra={"encoding": "cp1251"},
    ),
    Shape(
        "utf16-no-bom.txt",
        "5 consejos para ahorrar dinero cada mes",
        (
            (
                "lesson",
                (
                    "Haz un presupuesto (y revísalo cada domingo)",
                    "Automatiza el ahorro",
                    "Espera 48 horas antes de comprar",
                    "Cocina en casa",
                    "Revisa tus suscripciones",
                ),
            ),
        ),
        notes=("not UTF-8; read it as UTF-16-LE (no byte order mark).",),
        closing=("Conclusión",),
        extra={"encoding": "utf-16-le"},
    ),
    Shape(
        "parts.md",
        "Training for Your First Half Marathon: 6 Tips",
        (
            (
                "tip",
                (
                    "Get your shoes fitted",
                    "Build a base first",
                    "Pick a plan you can keep",
                    "Run most runs slowly",
                    "Practise race-day food",
                    "Taper properly",
                ),
            ),
        ),
        welcome=("Paragraph",),
        closing=("Good luck!",),
        extra={"part_headings": ("Part 1: Before you start",), "opens": {4: "Heading"}},
    ),
    Shape(
        "parts-restart.txt",
        "Learn to Bake Bread: A Two-Part Guide",
        (
            ("lesson", ("Flour", "Yeast", "Salt")),
            ("lesson", ("Mix and knead", "Let it rise", "Shape and bake")),
        ),
        welcome=("Paragraph",),
        closing=(None,),
        extra={"part_headings": ("Part 1: Ingredients", "Part 2: Method")},
    ),
    Shape(
        "grouped-numbering.md",
        "9 Ways to Cut Your Energy Bill",
        (
            (
                "way",
                (
                    "Put a lid on it",
                    "Only boil what you need",
                    "Defrost the freezer",
                    "Switch off at the wall",
                    "Close the curtains at dusk",
                    "Swap to LED bulbs",
                    "Shorter showers",
                    "Fix dripping taps",
                    "Insulate the tank",
                ),
            ),
        ),
        welcome=("Paragraph",),
        closing=("Conclusion",),
        extra={"part_headings": ("In the kitchen",), "opens": {4: "Heading", 7: "Heading"}},
    ),
    Shape(
        "qa-lines.txt",
        "Sleep Questions, Answered",
        (
            (
                "question",
                (
                    "How much sleep does an adult need?",
                    "Is it bad to sleep in at weekends?",
                    "Does a nightcap help?",
                    "What about naps?",
                ),
            ),
        ),
        welcome=("Paragraph",),
    ),
    Shape(
        "faq-headings.md",
        "Houseplant Watering FAQ: 5 Questions Answered",
        (
            (
                "question",
                (
                    "How often should I water?",
                    "Is tap water safe?",
                    "Should I water from the top or the bottom?",
                    "What are the signs of overwatering?",
                    "Do plants need less water in winter?",
                ),
            ),
        ),
        welcome=("Paragraph",),
    ),
    Shape(
        "bold-lines.md",
        "Ways to Make Your Laptop Battery Last Longer",
        (
            (
                "way",
                (
                    "Keep it between 20 and 80 percent",
                    "Turn the screen down",
                    "Close what you are not using",
                    "Keep it cool",
                    "Update the system",
                ),
            ),
        ),
        welcome=("Paragraph",),
    ),
    Shape(
        "relative-date-byline.txt",
        "5 Things I Stopped Doing to Get More Done",
        (
            (
                "lesson",
                (
                    "I stopped answering email first thing",
                    "I stopped multitasking",
                    "I stopped saying yes to every meeting",
                    "I stopped working through lunch",
                    "I stopped keeping my to-do list in my head",
                ),
            ),
        ),
        notes=(
            "no blank lines between paragraphs",
            "line 1 `More on Focus`; line 2 `Ana Example`; line 3 `2 years ago`",
        ),
        welcome=("Paragraph", "Paragraph", "Paragraph"),
    ),
    Shape(
        "bullet-items.txt",
        "Hygiène du sommeil : 5 astuces pour bien dormir ce soir",
        (
            (
                "lesson",
                (
                    "🕒 Respectez un horaire régulier",
                    "📵 Évitez les écrans le soir",
                    "🌡️ Gardez la chambre fraîche",
                    "☕ Limitez la caféine",
                    "📝 Videz votre tête",
                ),
            ),
        ),
        notes=(
            "line 5: nothing is numbered: the bulleted list of 5 entries, as many as the article "
            "counts, is read as the items",
        ),
        welcome=("Paragraph",),
        closing=(None,),
    ),
    Shape(
        "devto-footnote.md",
        "5 VS Code Extensions I Install First",
        (
            (
                "lesson",
                ("Error Lens", "GitLens", "Prettier", "Live Share", "Todo Tree"),
            ),
        ),
        notes=(
            "line 12 `{% embed https://www.youtube.com/watch?v=abc123 %}`; line 22 "
            "`{% github example/gitlens %}`",
            "1 footnote put in brackets where cited",
        ),
        welcome=("Paragraph",),
        closing=(None,),
        extra={"description": "The five extensions that go on every new machine."},
    ),
    Shape(
        "thread.txt",
        "What ten years of hiring taught me: a thread",
        (
            (
                "lesson",
                (
                    "Most interviews test the wrong thing",
                    "Let candidates use their own tools",
                    "Talk about a project they are proud of",
                    "Always leave time for their questions",
                    "Decide within a day",
                ),
            ),
        ),
        welcome=("Paragraph",),
        closing=(None,),
    ),
    Shape(
        "nested-code.md",
        "4 Git Commands Worth Learning This Week",
        (("lesson", ("git switch", "git restore", "git stash", "git bisect")),),
        welcome=("Paragraph",),
        closing=(None,),
        extra={"code": (1, "git switch main\ngit switch -c feature/login")},
    ),
    Shape(
        "two-items.txt",
        "2 Reasons to Stretch After a Run",
        (("reason", ("Your legs recover faster", "You stay flexible")),),
        welcome=(),
    ),
    Shape(
        "number-own-line.txt",
        "4 Ways to Make Mornings Easier",
        (
            (
                "way",
                (
                    "Prepare the night before",
                    "Wake at the same time",
                    "Drink water first",
                    "Step outside",
                ),
            ),
        ),
        notes=("no blank lines between paragraphs",),
        welcome=("Paragraph",),
        extra={"number_lines": True},
    ),
    Shape(
        "number-own-line-bold.md",
        "3 Rules for Saving Money",
        (("rule", ("Pay yourself first", "Wait a day", "Cancel one subscription")),),
        welcome=("Paragraph",),
        extra={"number_lines": True},
    ),
    Shape(
        "site-title-promos.txt",
        "7 Ways to Drink More Water",
        (
            (
                "way",
                (
                    "Start the day with a glass",
                    "Carry a bottle you like",
                    "Flavour it naturally",
                    "Drink before every meal",
                    "Set reminders",
                    "Eat your water",
                    "Track it for a week",
                ),
            ),
        ),
        notes=(
            "line 5 `Advertisement`; line 10 `Related: How Much Water Do You Really Need?`; line "
            "15 `Click to Tweet`; line 20 `Read more: The Best Water Bottles of the Year`; line "
            "28 `Advertisement`",
            "`| Example Health` dropped from the title: it reads as the site's name",
        ),
        welcome=("Paragraph",),
        dropped=((1, 1),),
    ),
    Shape(
        "saved-page.html",
        "5 Ways to Keep Houseplants Alive",
        (
            (
                "way",
                (
                    "Water less than you think",
                    "Give them light",
                    "Repot in spring",
                    "Wipe the leaves",
                    "Leave them alone",
                ),
            ),
        ),
        notes=(
            "a saved web page: only its <article> was read; 13 lines of the page (head, scripts, "
            "navigation, sidebars, footer) dropped",
            "no blank lines between paragraphs",
            "line 13 `By Sam Example · March 3, 2023`",
        ),
        welcome=("Paragraph",),
        dropped=((1, 10), (26, 28)),
    ),
    Shape(
        "mixed-bold-link-titles.md",
        "5 Free Tools for Writers",
        (
            (
                "lesson",
                ("Hemingway Editor", "LanguageTool", "Draft", "Ommwriter", "Readable"),
            ),
        ),
        welcome=("Paragraph",),
    ),
    Shape(
        "takeaways-box.md",
        "4 Ways to Fall Asleep Faster",
        (
            (
                "way",
                (
                    "Keep the same bedtime",
                    "Dim the lights",
                    "Cool the room",
                    "Put the phone away",
                ),
            ),
        ),
        welcome=("Heading", "ListBlock", "Paragraph"),
        closing=("Summary",),
    ),
]
IDS = [shape.file for shape in SHAPES]


def test_the_corpus_has_every_article_and_no_other() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(IDS)
    assert len(IDS) >= 15


@pytest.fixture(scope="module")
def courses() -> dict[str, Course]:
    return {shape.file: load_article(CORPUS / shape.file) for shape in SHAPES}


@pytest.fixture(scope="module")
def builds() -> dict[str, CourseBuild]:
    return {shape.file: build_course(_settings(CORPUS / shape.file)) for shape in SHAPES}


def _settings(article: Path) -> Settings:
    settings = default_settings(REPO)
    return replace(settings, course=replace(settings.course, article=article))


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_lessons_titles_and_kinds(shape: Shape, courses: dict[str, Course]) -> None:
    course = courses[shape.file]
    assert course.title == shape.title
    assert [
        (part.kind.value, tuple(lesson.title for lesson in course.lessons if lesson.part == i))
        for i, part in enumerate(course.parts)
    ] == [(kind, titles) for kind, titles in shape.parts]
    total = sum(len(titles) for _, titles in shape.parts)
    assert course.days == total
    assert [lesson.day for lesson in course.lessons] == list(range(1, total + 1))
    labels = [lesson_label(course, lesson) for lesson in course.lessons]
    expected = [
        f"{'Action step' if kind == 'action' else kind.capitalize()} {n} of {len(titles)}"
        for kind, titles in shape.parts
        for n in range(1, len(titles) + 1)
    ]
    assert labels == expected
    if "description" in shape.extra:
        assert course.description == shape.extra["description"]


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_notes_welcome_and_closing(shape: Shape, courses: dict[str, Course]) -> None:
    course = courses[shape.file]
    for phrase, note in zip(shape.notes, course.notes, strict=True):
        assert phrase in note
        assert note.startswith(str(CORPUS / shape.file) + ": ")
    if shape.welcome:
        assert [type(block).__name__ for block in course.welcome] == list(shape.welcome)
    assert tuple(section.heading for section in course.closing) == shape.closing
    if "part_headings" in shape.extra:
        assert tuple(part.heading for part in course.parts) == shape.extra["part_headings"]
    opens = shape.extra.get("opens", {})
    assert isinstance(opens, dict)
    for lesson in course.lessons:
        # A lesson opens with a sub-heading only where the group it heads begins.
        first = type(lesson.blocks[0]).__name__
        assert (first == "Heading") == (opens.get(lesson.day) == "Heading"), lesson.day
    if "code" in shape.extra:
        expected = shape.extra["code"]
        assert isinstance(expected, tuple)
        day, code = expected
        codes = [b.text for b in course.lessons[day - 1].blocks if isinstance(b, CodeBlock)]
        assert codes == [code]
    if shape.last_blocks:
        last = course.lessons[-1].blocks
        assert [type(block).__name__ for block in last] == list(shape.last_blocks)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_every_paragraph_is_accounted_for(shape: Shape, courses: dict[str, Course]) -> None:
    course = courses[shape.file]
    encoding = str(shape.extra.get("encoding", "utf-8"))
    number_lines = bool(shape.extra.get("number_lines"))
    source = _source_words(CORPUS / shape.file, shape.dropped, encoding, number_lines)
    assert _course_words(course, shape.dropped) == source


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_no_markup_reaches_any_part_or_subject(
    shape: Shape, builds: dict[str, CourseBuild]
) -> None:
    build = builds[shape.file]
    values = sample_recipient(_settings(CORPUS / shape.file)).values()
    for lesson in build.lessons:
        rendered = lesson.rendered
        assert not MARKUP.search(rendered.subject), rendered.subject
        assert not MARKUP.search(rendered.preheader), rendered.preheader
        text = fill(rendered.text, rendered.slots, values)
        shown = re.sub(r"<(?:https?://|mailto:)[^>\s]+>", "", text)
        assert not MARKUP.search(shown), (lesson.day, MARKUP.search(shown))
        assert not re.search(r"<[/!a-zA-Z]", shown), lesson.day
        html = fill(rendered.html, rendered.slots, values)
        visible = _visible_text(html)
        assert not MARKUP.search(visible), (lesson.day, MARKUP.search(visible))
        assert not re.search("[<>]", visible), lesson.day
        # The article's own HTML never comes through as markup either.
        assert 'id="top"' not in html
        assert 'align="right"' not in html


def test_inline_markup_is_formatting_in_html_and_clean_in_text(
    builds: dict[str, CourseBuild],
) -> None:
    build = builds["images-links.md"]
    welcome = build.lesson(1).rendered
    assert '<img alt="A sunset over a harbour, taken on a phone"' in welcome.html
    assert 'src="https://images.example.com/phone/harbour.jpg"' in welcome.html
    assert "[Image: A sunset over a harbour, taken on a phone]" in welcome.text
    assert "<em>you</em>" in welcome.html
    grid = build.lesson(2).rendered
    assert 'href="https://en.example.org/wiki/Rule_of_thirds"' in grid.html
    assert "rule of thirds <https://en.example.org/wiki/Rule_of_thirds>" in _flat(grid.text)
    assert "grid-setting.png" not in grid.html
    focus = build.lesson(3).rendered
    assert "<strong>brightness</strong>" in focus.html
    assert "set the brightness." in _flat(focus.text)
    light = build.lesson(5).rendered
    assert ">harbour_dusk.jpg</code>" in light.html
    assert "Rename IMG_0042 to something like harbour_dusk.jpg" in _flat(light.text)
    assert 'href="mailto:editor@example.com"' in light.html
    desk = builds["html-preamble.md"]
    assert "<strong>velcro strap</strong>" in desk.lesson(2).rendered.html
    first = desk.lesson(1).rendered
    assert "A cluttered desk costs a few seconds every time you look for something.<br />" in (
        first.html
    )


def test_welcome_summary_follows_the_parts(builds: dict[str, CourseBuild]) -> None:
    def summary(name: str) -> str:
        text = " ".join(builds[name].lesson(1).rendered.text.split())
        match = re.search(r"Over the next .*?Here is the first\.", text)
        assert match is not None
        return match[0]

    assert summary("single-list.txt") == (
        "Over the next 10 days you will get one short lesson a day: 10 signs. Here is the first."
    )
    assert summary("three-lists.txt") == (
        "Over the next 10 days you will get one short lesson a day: 3 signs, 4 mistakes, then "
        "3 steps. Here is the first."
    )
    assert summary("all-ones.txt") == (
        "Over the next 5 days you will get one short lesson a day. Here is the first."
    )
    assert "then 0" not in " ".join(b.lesson(1).rendered.text for b in builds.values())


def test_front_matter_never_reaches_an_email(builds: dict[str, CourseBuild]) -> None:
    for name in ("front-matter-yaml.md", "front-matter-toml.md"):
        for lesson in builds[name].lessons:
            for part in (lesson.rendered.html, lesson.rendered.text):
                assert "draft" not in part
                assert "2023-04-18" not in part
                assert "categories" not in part
                assert "+++" not in part


# What the checks compare: words, case folded; the source's markup and item numbers gone.

MARKUP = re.compile(
    r"\*\*|__|\]\(|!\[|\\[_*#`\[\]]|&lt;|&gt;|&amp;|&nbsp;|&#|^#{1,6} |^\+\+\+|^---$|<br",
    re.MULTILINE,
)
WORD = re.compile(r"[^\W_]+")
NUMBER_LINE = re.compile(r"^[ \t]*(?:\*\*)?\d{1,3}[.):]?(?:\*\*)?[ \t]*$", re.MULTILINE)
NUMBER_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
ITEM_MARKER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]+)?(?:\*\*)?(?:[^\w\s#(*]+[ \t]*)?"
    r"(?:(?:\(?\d{1,3}[.):]|#\d{1,3}(?:[.:]|[ \t]+[–—-])?|\d{1,3}[ \t]*[–—-]|\d\ufe0f?\u20e3"
    rf"|[IVX]{{1,5}}[.)]|(?!part\b)[A-Za-z]+\.?[ \t]+(?:#|n°)?(?:\d{{1,3}}|{NUMBER_WORDS})"
    r"[ \t]*[:.)–—-])"
    r"(?=[ \t])|(?:\d{1,3}|[一二三四五六七八九十]{1,3})、|[QA][.:](?=[ \t])|\d{1,3}/(?=[ \t]))",
    re.MULTILINE | re.IGNORECASE,
)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("style", "title", "head")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("style", "title", "head")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def _source_words(
    path: Path,
    dropped: tuple[tuple[int, int], ...],
    encoding: str = "utf-8",
    number_lines: bool = False,
) -> Counter[str]:
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = data.decode("cp1252")
    lines = text.splitlines()
    for first, last in dropped:
        lines[first - 1 : last] = [""] * (last - first + 1)
        text = "\n".join(lines)
    if lines and lines[0] in ("---", "+++"):
        end = lines.index(lines[0], 1)
        kept = [
            re.sub(r"^\w+\s*[:=]\s*", "", line)
            for line in lines[1:end]
            if re.match(r"(title|description)\s*[:=]", line)
        ]
        text = "\n".join(kept + lines[end + 1 :])
    # A static-site generator's tags and objects (Hugo, Liquid, kramdown).
    text = re.sub(r"\{\{[<%].*?[>%]\}\}|\{%.*?%\}|\{\{.*?\}\}|\{:.*?\}", " ", text)
    text = re.sub(r"^ {0,3}(?:`{3,}|~{3,})\S*", " ", text, flags=re.MULTILINE)  # fences
    text = re.sub(r"\[\^[^\]]+\]:?", " ", text)  # footnote marks (the note is put in place)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)  # images: checked on their own
    text = re.sub(r"\[\s*\]\([^)]*\)", " ", text)  # a link that held only an image
    text = re.sub(r"<img[^>]*>", " ", text)
    text = re.sub(r'<a href="(https?://[^"]+)"[^>]*>', r" \1 ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\[([^\]]*)\]\(((?:https?://|mailto:)[^)]*)\)", r"\1 \2", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = ITEM_MARKER.sub(" ", text)
    if number_lines:
        # Each item's number on a line of its own ("01", "**2.**").
        text = NUMBER_LINE.sub(" ", text)
    return Counter(word.casefold() for word in WORD.findall(text))


def _course_words(course: Course, dropped: tuple[tuple[int, int], ...] = ()) -> Counter[str]:
    texts = [course.title, course.description]
    if any("dropped from the title" in note for note in course.notes):
        # The site's name after the title is dropped: count the title from the source.
        texts = [course.description]
    texts += [part.heading for part in course.parts]
    for lesson in course.lessons:
        texts.append(lesson.title)
        blocks = lesson.blocks
        first = blocks[0] if blocks else None
        if isinstance(first, Paragraph) and first.runs[0].url:
            # A linked title opens the body with its link: its words are the title's.
            lead = first.runs[0]
            if lead.text in lesson.title:
                texts.append(lead.url)
                blocks = (Paragraph(first.runs[1:], first.line), *blocks[1:])
        texts += _block_words(blocks)
    texts += _block_words(course.welcome) + _block_words(course.disclosure)
    for section in course.closing:
        texts += [section.heading or "", *_block_words(section.blocks)]
    # Web-page furniture is dropped with a note that quotes it (unless the shape's dropped
    # lines, taken out of the source, hold it).
    for note in course.notes:
        if "dropped as parts of the web page" in note:
            texts += [
                quoted
                for line, quoted in re.findall(r"line (\d+) `([^`]*)`", note)
                if not any(first <= int(line) <= last for first, last in dropped)
            ]
        texts += re.findall(r"`([^`]*)` dropped: it reads", note)
    return Counter(word.casefold() for text in texts for word in WORD.findall(text))


def _block_words(blocks: tuple[object, ...] | list[object]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Image):
            continue
        if isinstance(block, Section):
            continue
        runs: list[Run] = []
        if isinstance(block, ListBlock):
            for item in block.items:
                runs += item
        elif hasattr(block, "runs"):
            runs += block.runs
        else:
            out.append(getattr(block, "text", ""))
        for run in runs:
            out.append(run.text)
            if run.url and run.url != run.text:
                out.append(run.url)
    return out
