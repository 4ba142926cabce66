/**
 * The note under the video (pure: a player snapshot and the daemon's pace in, {className, text}
 * out): what the channel's generator is, and whether the daemon here keeps up, in the speed
 * notice's own words (notice-controller.js: paceText), so that the two never disagree.
 */
import { ErrorCode } from '../protocol.js';
import { paceText } from '../controllers/notice-controller.js';

const WHERE = 'frames are generated on this machine from the prompts the server sends';
const ABOUT = {
  tiny: 'the tiny test generator has seeded random weights, so its pictures carry no meaning. They are real frames ' +
    'from the same code path as SD-Turbo (prompts -> one UNet step -> decoder -> H.264 -> this video element). ' +
    'With SD-Turbo weights on a GPU the same page shows the fitted video (see the README).',
  nano: `${WHERE}. nano is the project's own small generator (a 1M-parameter convolutional step that reads the ` +
    'prompt as 32x32 maps over the frame, and a small decoder), trained here on openly licensed footage for ' +
    '21 GPU-minutes: expect the picture of a thumbnail of the same bytes, blurred, not codec detail. SD-Turbo stays ' +
    'the production generator.',
};

/**
 * @param {object} s   Player.snapshot()
 * @param {import('../controllers/notice-controller.js').DaemonSpeed|null} speed  Player.daemonSpeed()
 * @returns {{className: string, text: string}|null}  null before a manifest
 */
export function generatorNote(s, speed) {
  const generator = s.generator;
  if (generator === null) return null;
  if (s.blocked?.kind === ErrorCode.GENERATOR_MISMATCH) {
    // Nothing is generated: say what the channel needs instead of how its frames are made.
    const runs = s.daemonGeneratorId ? `, the daemon here runs ${s.daemonGeneratorId}` : '';
    return {
      className: 'note blocked',
      text: `Nothing plays: this channel needs generator ${generator.name} (${generator.id})${runs}. ` +
        'The message above says what to do.',
    };
  }
  const family = generator.id.split(':')[0];
  const tiny = family.startsWith('tiny');
  const about = ABOUT[tiny ? 'tiny' : family] ?? `${WHERE}.`;
  const pace = s.daemonConnected
    ? `${paceText(speed) ?? 'The daemon here has not generated any of it yet'}.`
    : 'No daemon generates it now (see the message above).';
  return { className: tiny ? 'note tiny' : 'note', text: `Generator ${generator.name} (${generator.id}): ${about} ${pace}` };
}
