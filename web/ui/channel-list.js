/**
 * The channels a media server has (its `/channels` endpoint, docs/server.md), for the page to
 * list when the one asked for does not exist, and for the channel field's suggestions.
 */
import { daemonCommand, namesWeights } from '../controllers/notice-controller.js';

/** `/channels` next to the server's WebSocket URL (ws://host/ws -> http://host/channels). */
export function channelsUrl(serverUrl) {
  const url = new URL(serverUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = '/channels';
  url.search = '';
  url.hash = '';
  return url.href;
}

/** [{name, generator: {id, name}, live, seconds, levels}] from the server (throws when unreachable). */
export async function fetchChannels(serverUrl, fetchImpl = globalThis.fetch) {
  const response = await fetchImpl(channelsUrl(serverUrl));
  if (!response.ok) throw new Error(`${channelsUrl(serverUrl)} answered ${response.status}`);
  const body = await response.json();
  return Array.isArray(body?.channels) ? body.channels : [];
}

/** What a person needs to play a channel: which daemon, or why none will do. */
export function daemonHint(channel, daemonGeneratorId) {
  const id = channel.generator.id;
  if (daemonGeneratorId !== null && id === daemonGeneratorId) return 'plays with the daemon running here';
  if (!namesWeights(id)) return 'placeholder generator id: no daemon plays it until it is imported with one (`--generator-id`)';
  return `needs \`${daemonCommand(id)}\` with the weights of \`${id}\``;
}

/**
 * Fills `element` with one entry per channel: a button that picks it, its generator, length and
 * levels, and the daemon it needs. `onPick(name)` is called with the chosen channel.
 */
export function renderChannelList(element, channels, { onPick, daemonGeneratorId = null, heading }) {
  const doc = element.ownerDocument;
  const items = channels.map((channel) => {
    const item = doc.createElement('li');
    const button = doc.createElement('button');
    button.type = 'button';
    button.textContent = channel.name;
    button.dataset.channel = channel.name;
    button.addEventListener('click', () => onPick(channel.name));
    const length = channel.live ? 'live' : `${channel.seconds.toFixed(0)} s`;
    item.append(button, ` ${channel.generator.name} (${channel.generator.id}), ${length}, ${channel.levels} levels: `);
    // `code` spans for commands written between backticks
    daemonHint(channel, daemonGeneratorId).split('`').forEach((part, i) => {
      if (i % 2 === 0) {
        item.append(part);
        return;
      }
      const code = doc.createElement('code');
      code.textContent = part;
      item.append(code);
    });
    return item;
  });
  const title = doc.createElement('p');
  title.textContent = channels.length > 0 ? heading : 'This server has no channels yet (docs/server.md: every ladder directory under --media is one).';
  const list = doc.createElement('ul');
  list.append(...items);
  element.replaceChildren(title, list);
  element.hidden = false;
}
