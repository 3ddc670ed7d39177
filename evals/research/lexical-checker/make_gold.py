"""Build a small hand-written gold set on the seed news article (000_*): supported paraphrases
vs claims with changed numbers, dates, names, negations and invented additions."""
import json, glob, os
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
doc = open(glob.glob(os.path.join(ROOT, 'seeds', '000_*.txt'))[0], encoding='utf-8').read()
SUP = [
 "Trump has spoken with Putin by phone at least twice since returning to the White House.",
 "Steve Witkoff, Trump's special envoy, travelled to Moscow and St. Petersburg to meet the Russian leader.",
 "According to officials, the most recent US proposal would recognise Russian control of Crimea.",
 "Angela Stent used to be a national intelligence officer for Russia and Eurasia.",
 "At their 2018 meeting in Helsinki, Putin gave Trump a ball from the World Cup.",
 "In 2007 Putin let his Labrador approach Angela Merkel even though she is afraid of dogs.",
 "Putin has outlasted five US presidents and eight British prime ministers.",
 "Keith Kellogg, the official special envoy for Ukraine and Russia, was mostly kept out of the talks with Moscow.",
 "Rubio warned that the US could pull out of the negotiations within days if there was no progress.",
 "Jennifer Kavanagh directs military analysis at the Defense Priorities think tank.",
 "Sam Green is a professor of Russian politics at King's College London.",
 "George W. Bush hosted Putin at his ranch in Crawford, Texas.",
 "Putin was the first world leader to phone Bush after the September 11 attacks.",
 "During Bill Clinton's presidency Russia was invited to join the G7 in 1997.",
 "Russia was invited into the World Trade Organization in 2012, in Obama's first term.",
 "Because of term limits, Putin stepped down in 2008 and became prime minister.",
 "Thomas Graham was senior director for Russia at the National Security Council between 2004 and 2007.",
 "Graham argues for competitive coexistence, with rivalry that is mostly economic, cultural and diplomatic rather than military.",
 "Sergei Lavrov, Yuri Ushakov and Kirill Dmitriev were part of the Russian delegation.",
 "Lowe said that Putin's time in the KGB shaped how he approaches negotiations.",
 "In recent weeks Putin has launched major missile attacks on Ukraine, including its capital Kiev.",
 "Witkoff is a real estate mogul with no background in diplomacy.",
]
UNSUP = [
 # numbers
 "Trump has spoken with Putin by phone at least five times since returning to the White House.",
 "Putin has outlasted seven US presidents and eight British prime ministers.",
 "Putin has outlasted five US presidents and four Chinese leaders.",
 # dates
 "At their 2016 meeting in Helsinki, Putin gave Trump a ball from the World Cup.",
 "In 2012 Putin let his Labrador approach Angela Merkel even though she is afraid of dogs.",
 "During Bill Clinton's presidency Russia was invited to join the G7 in 1994.",
 "Thomas Graham was senior director for Russia at the National Security Council between 1998 and 2003.",
 # names / entities
 "Steve Witkoff travelled to Kiev and Minsk to meet the Russian leader.",
 "George W. Bush hosted Putin at his ranch in Dallas, Texas.",
 "Jennifer Kavanagh directs military analysis at the Brookings Institution.",
 "Sam Green is a professor of Russian politics at Oxford University.",
 "Sergei Shoigu, Yuri Ushakov and Kirill Dmitriev were part of the Russian delegation.",
 "Marco Rubio was officially appointed special envoy for Ukraine and Russia.",
 # negations / reversals
 "According to officials, the most recent US proposal does not recognise Russian control of Crimea.",
 "Putin was not among the world leaders who called Bush after the September 11 attacks.",
 "Trump condemned Moscow's interference in the 2016 US presidential election.",
 "Witkoff is a real estate mogul with extensive experience in diplomacy.",
 "Putin never stepped down as president because of term limits.",
 # invented additions
 "Witkoff's last trip to Moscow produced a signed ceasefire agreement.",
 "Trump plans to meet Putin in Geneva next month.",
 "Keith Kellogg resigned in protest after being sidelined from the talks.",
 "The United States has agreed to send additional air defence systems to Ukraine.",
 "Angela Stent said Putin is ready to withdraw troops in exchange for sanctions relief.",
 "Kirill Dmitriev previously served as Russia's ambassador to the United Nations.",
]
os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data'), exist_ok=True)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'gold_news.jsonl'), 'w') as f:
    for i, c in enumerate(SUP):
        f.write(json.dumps({'id': f'gold_s{i}', 'document': doc, 'claim': c, 'label': 1}) + '\n')
    for i, c in enumerate(UNSUP):
        f.write(json.dumps({'id': f'gold_u{i}', 'document': doc, 'claim': c, 'label': 0}) + '\n')
print(len(SUP), len(UNSUP))
