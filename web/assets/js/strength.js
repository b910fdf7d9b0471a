// A hint of how strong a new password is, by zxcvbn: a hint only, never instead of the
// server's password policy, which decides. zxcvbn is large (800 KB), so it is loaded the first
// time a new password is typed, never with the page.

let loading = null;

function load() {
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = '/assets/vendor/zxcvbn.js';
    script.onload = () => resolve(window.zxcvbn);
    script.onerror = reject;
    document.head.append(script);
  });
  return loading;
}

const WORDS = ['very weak', 'weak', 'fair', 'strong', 'very strong'];

// Shows in `output` the strength of what is typed in `input`; `context()` gives the customer's
// own words (names, username), which make a password weaker.
export function strengthHint(input, output, context = () => []) {
  let timer = null;
  input.addEventListener('input', () => {
    // Judged once typing pauses, so a screen reader announces one hint, not one per key.
    clearTimeout(timer);
    timer = setTimeout(() => judge(input, output, context), 400);
  });
}

async function judge(input, output, context) {
  const typed = input.value;
  if (!typed) {
    output.textContent = '';
    return;
  }
  const zxcvbn = await load().catch(() => null);
  // No hint if it could not load, or when the field changed meanwhile.
  if (!zxcvbn || input.value !== typed) return;
  const result = zxcvbn(typed.slice(0, 128), context());
  const warning = result.feedback.warning ? ` ${result.feedback.warning}.` : '';
  output.textContent = `Strength: ${WORDS[result.score]}.${warning}`;
}
