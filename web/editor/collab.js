// The collaborative-editing state of @codemirror/collab 6.1.1 (MIT, (c) Marijn
// Haverbeke and others), same API (collab, receiveUpdates, sendableUpdates,
// getSyncedVersion, getClientID), with ONE change: when a remote update and a
// local unconfirmed update insert at the same position, the local insertion
// stays first and the remote one goes after it (upstream puts the remote one
// first).
//
// Why: with upstream's order, two people typing at the same place interleave.
// A types "ab", B types "xy" at position p. A's "a" is confirmed, A's "b" is
// still unconfirmed at p+1 when B's "x" (rebased after "a") arrives at p+1;
// upstream places it before "b": "axb", and A's cursor, after "b", keeps
// typing there while B's cursor, after "x", types before "b": "axyb...". With
// local-first, A's view is "abx" with A's cursor before "x" (cursors stay
// before text inserted at their position), so each person's text stays in one
// piece. Both orders converge (the remote change is mapped over the local ones
// with the opposite bias, so local-then-remote equals remote-then-local); the
// test notesync.test.mjs ("same place") shows upstream interleaving and this
// one not.

import { Facet, combineConfig, Annotation, StateField, StateEffect, ChangeSet, Transaction } from '@codemirror/state';

class LocalUpdate {
  constructor(origin, changes, effects, clientID) {
    this.origin = origin;
    this.changes = changes;
    this.effects = effects;
    this.clientID = clientID;
  }
}

class CollabState {
  constructor(version, unconfirmed) {
    this.version = version; // updates received (confirmed) so far
    this.unconfirmed = unconfirmed; // local updates the authority has not confirmed yet
  }
}

const collabConfig = Facet.define({
  combine(configs) {
    const combined = combineConfig(configs, { startVersion: 0, clientID: null, sharedEffects: () => [] }, { generatedID: (a) => a });
    if (combined.clientID == null) combined.clientID = (configs.length && configs[0].generatedID) || '';
    return combined;
  },
});

const collabReceive = Annotation.define();

const collabField = StateField.define({
  create(state) {
    return new CollabState(state.facet(collabConfig).startVersion, []);
  },
  update(collab, tr) {
    const isSync = tr.annotation(collabReceive);
    if (isSync) return isSync;
    const { sharedEffects, clientID } = tr.startState.facet(collabConfig);
    const effects = sharedEffects(tr);
    if (effects.length || !tr.changes.empty) {
      return new CollabState(collab.version, collab.unconfirmed.concat(new LocalUpdate(tr, tr.changes, effects, clientID)));
    }
    return collab;
  },
});

export function collab(config = {}) {
  return [collabField, collabConfig.of({ generatedID: Math.floor(Math.random() * 1e9).toString(36), ...config })];
}

// A transaction applying updates from the authority (in its order). Updates
// whose clientID is this editor's confirm the oldest unconfirmed local updates.
export function receiveUpdates(state, updates) {
  let { version, unconfirmed } = state.field(collabField);
  const { clientID } = state.facet(collabConfig);
  version += updates.length;
  let effects = [], changes = null;
  let own = 0;
  for (const update of updates) {
    const ours = own < unconfirmed.length ? unconfirmed[own] : null;
    if (ours && ours.clientID === update.clientID) {
      if (changes) changes = changes.map(ours.changes, true);
      effects = StateEffect.mapEffects(effects, update.changes);
      own++;
    } else {
      effects = StateEffect.mapEffects(effects, update.changes);
      if (update.effects) effects = effects.concat(update.effects);
      changes = changes ? changes.compose(update.changes) : update.changes;
    }
  }
  if (own) unconfirmed = unconfirmed.slice(own);
  if (unconfirmed.length) {
    if (changes) {
      unconfirmed = unconfirmed.map((update) => {
        const updateChanges = update.changes.map(changes, true); // local first (upstream: map(changes))
        changes = changes.map(update.changes); // remote after local (upstream: map(update.changes, true))
        return new LocalUpdate(update.origin, updateChanges, StateEffect.mapEffects(update.effects, changes), clientID);
      });
    }
    if (effects.length) {
      const composed = unconfirmed.reduce((ch, u) => ch.compose(u.changes), ChangeSet.empty(unconfirmed[0].changes.length));
      effects = StateEffect.mapEffects(effects, composed);
    }
  }
  if (!changes) return state.update({ annotations: [collabReceive.of(new CollabState(version, unconfirmed))] });
  return state.update({
    changes,
    effects,
    annotations: [Transaction.addToHistory.of(false), Transaction.remote.of(true), collabReceive.of(new CollabState(version, unconfirmed))],
    filter: false,
  });
}

// The local updates not confirmed yet (their changes apply, in order, to the
// last confirmed document).
export function sendableUpdates(state) {
  return state.field(collabField).unconfirmed;
}

export function getSyncedVersion(state) {
  return state.field(collabField).version;
}

export function getClientID(state) {
  return state.facet(collabConfig).clientID;
}
